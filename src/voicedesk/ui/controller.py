"""The window's link to conversations: a QObject that turns session events into Qt signals.

One :class:`ConversationController` lives as long as the window. Each Start builds
a new :class:`~voicedesk.session.Conversation` through the
:class:`~voicedesk.launch.Launcher`; the controller listens to it, folds its events
into the :class:`~voicedesk.session.transcript.Transcript`, and re-emits what views
need. Everything runs on the Qt thread, which is the asyncio loop's (qasync).

Hands-free (:meth:`ConversationController.set_hands_free`): a
:class:`~voicedesk.handsfree.HandsFreeLoop` builds the conversations instead of Start;
each one is attached here as it begins, so the window shows it as any other.
``handsFreeChanged(state, sentence)`` says what the loop does ("off", "listening", …).
Push-to-talk: :attr:`ConversationController.talk` (``talkChanged`` after each change).

MCP tools that need the user's approval: the controller is the conversation's
approver. It emits ``approvalRequested(call)`` and waits for :meth:`answer_approval`;
no answer within the call's approval time, the conversation ending, or the window
closing (:meth:`shutdown`) is a denial. ``approvalClosed(tool_call_id)`` says when
the question is gone, whatever the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject, Signal

from voicedesk.handsfree import (
    ConversationBegins,
    ConversationOver,
    HandsFreeLoop,
    HandsFreeUnavailable,
    HotwordHeard,
    LoopEvent,
    LoopProblem,
    LoopState,
    PushToTalk,
    StateChanged,
    launcher_loop,
)
from voicedesk.launch import Launcher, LaunchPlan
from voicedesk.protocol.events import ClientToolCall, FeedbackScore, McpToolCall
from voicedesk.protocol.machine import (
    CanSendFeedbackChanged,
    Disconnected,
    ErrorReported,
    FeedbackChanged,
    LatencyMeasured,
    McpApprovalClosed,
    ModeChanged,
    StatusChanged,
)
from voicedesk.session import (
    AgentTypingChanged,
    AudioNotice,
    AudioUnavailable,
    Conversation,
    SessionEvent,
)
from voicedesk.session.transcript import Transcript, approval_time_s, log_event
from voicedesk.ui.tasks import AsyncRunner

logger = logging.getLogger(__name__)


class ConversationController(QObject):
    """Start/end, messages, feedback, mute, volume and devices for the window."""

    statusChanged = Signal(str)
    modeChanged = Signal(str)
    canSendFeedbackChanged = Signal(bool)
    feedbackChanged = Signal(object)  # the latest answer's rating: "like", "dislike" or None
    approvalRequested = Signal(object)  # an McpToolCall awaiting the user's approval
    approvalClosed = Signal(str)  # its tool_call_id: answered, timed out or withdrawn
    #: A client tool set to Ask: (ClientToolCall, seconds to answer); closed by
    #: ``approvalClosed`` as the MCP questions are.
    toolPermissionRequested = Signal(object, float)
    agentTypingChanged = Signal(bool)
    startingChanged = Signal(bool)
    latencyChanged = Signal(int)
    levelsChanged = Signal(float, float)
    errorRaised = Signal(str)
    audioChanged = Signal()
    ended = Signal(object)
    handsFreeChanged = Signal(str, str)  # the loop's state ("off", "listening", …), a sentence
    talkChanged = Signal()  # push-to-talk turned on or off, the talk key held or let go

    def __init__(self, launcher: Launcher, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.launcher = launcher
        self.transcript = Transcript(show_reasoning=launcher.plan.show_reasoning)
        self.runner = AsyncRunner(self.errorRaised.emit)
        self._conversation: Conversation | None = None
        self._unsubscribe: object = None
        self._starting = False
        self._muted = False
        self._volume = 1.0
        self._approvals: dict[str, asyncio.Future[bool]] = {}
        self._tool_questions: dict[str, asyncio.Future[str]] = {}
        self._hands_free: HandsFreeLoop | None = None
        self._hands_free_task: asyncio.Task[None] | None = None
        self._hands_free_state = LoopState.OFF
        self._hands_free_sentence = ""
        self.talk = PushToTalk(
            launcher, key=launcher.plan.talk_key, hold=True, on_change=self.talkChanged.emit
        )

    # ------------------------------------------------------------------ state

    @property
    def conversation(self) -> Conversation | None:
        return self._conversation

    @property
    def status(self) -> str:
        return self._conversation.status.value if self._conversation else "disconnected"

    @property
    def is_starting(self) -> bool:
        return self._starting

    @property
    def can_start(self) -> bool:
        if self._hands_free is not None:  # Start skips the hotword
            return self._hands_free_state is LoopState.LISTENING
        return self.status == "disconnected" and not self._starting

    @property
    def hands_free(self) -> bool:
        """The hands-free loop runs (from switching it on until it has stopped)."""
        return self._hands_free is not None

    @property
    def hands_free_state(self) -> LoopState:
        return self._hands_free_state

    @property
    def hands_free_sentence(self) -> str:
        return self._hands_free_sentence

    @property
    def can_end(self) -> bool:
        return self.status == "connected"

    @property
    def can_send_feedback(self) -> bool:
        return self._conversation is not None and self._conversation.can_send_feedback

    @property
    def feedback_rating(self) -> FeedbackScore | None:
        """The current rating of the latest answer (``None``: not rated)."""
        return self._conversation.feedback_rating if self._conversation is not None else None

    @property
    def is_agent_typing(self) -> bool:
        return self._conversation is not None and self._conversation.is_agent_typing

    @property
    def pending_approvals(self) -> tuple[str, ...]:
        """The tool_call_ids of the MCP calls waiting for the user's answer here."""
        return tuple(self._approvals)

    @property
    def is_speaking(self) -> bool:
        return self._conversation is not None and self._conversation.is_speaking

    @property
    def is_voice(self) -> bool:
        return self._conversation is not None and not self._conversation.is_text_only

    @property
    def plan(self) -> LaunchPlan:
        return self.launcher.plan

    # ------------------------------------------------------------------ actions

    def start(self) -> None:
        """Start a conversation with the current plan (no-op unless :attr:`can_start`);
        while hands-free listens, one starts on the open devices without the hotword."""
        if not self.can_start:
            return
        if self._hands_free is not None:
            self._hands_free.trigger()
            return
        self._set_starting(True)
        self.runner.run(self._start(), what="start the conversation")

    @property
    def can_continue(self) -> bool:
        """The last conversation dropped (the network, not you, the agent or an error
        it reported): a new one can pick it up, the agent told the earlier turns."""
        return self.can_start and self._hands_free is None and self.launcher.can_continue

    def continue_conversation(self) -> None:
        """Start a conversation that continues the one that dropped."""
        if not self.can_continue:
            return
        self._set_starting(True)
        self.transcript.add_notice(
            "Continuing the conversation that dropped: the agent is told its recent turns."
        )
        self.runner.run(self._start(continuing=True), what="continue the conversation")

    async def _start(self, *, continuing: bool = False) -> bool:
        try:
            conversation = await self.launcher.new_conversation(
                approver=self._ask_approval, tool_asker=self._ask_tool, continuing=continuing
            )
            self._attach(conversation)
            conversation.set_mic_muted(self._muted)
            conversation.set_volume(self._volume)
            return await conversation.start()
        finally:
            self._set_starting(False)

    def end(self) -> None:
        if self._conversation is not None and self.status in ("connected", "connecting"):
            self.runner.run(self._conversation.end(), what="end the conversation")

    def send_message(self, text: str) -> bool:
        """A typed message to the agent; ``True`` when it went (the box may be cleared)."""
        if self._conversation is None:
            return False
        return self._send(
            text, self._conversation.send_user_message, "message", self.transcript.add_user_message
        )

    def send_context(self, text: str) -> bool:
        """Background information for the agent (no reply expected)."""
        if self._conversation is None:
            return False
        return self._send(
            text,
            self._conversation.send_contextual_update,
            "context",
            lambda sent: self.transcript.add_notice(f"Context sent: {sent}"),
        )

    def _send(
        self,
        text: str,
        send: Callable[[str], bool],
        what: str,
        record: Callable[[str], None],
    ) -> bool:
        text = text.strip()
        if not text:
            return False
        if not send(text):
            self.errorRaised.emit(
                f"Not connected: the {what} was not sent. Start a conversation first."
            )
            return False
        record(text)
        return True

    def user_typing(self) -> None:
        """The user is typing: the conversation tells the agent, throttled."""
        if self._conversation is not None:
            self._conversation.user_typing()

    def send_feedback(self, like: bool) -> bool:
        """Rate the latest answer; the rating it already has clears it (the newest
        official client's rule). ``feedbackChanged`` tells the new rating."""
        return self._conversation is not None and self._conversation.send_feedback(like)

    def answer_approval(self, tool_call_id: str, approved: bool) -> bool:
        """The user's answer to an MCP approval; ``False`` when it no longer waits."""
        answer = self._approvals.get(tool_call_id)
        if answer is None or answer.done():
            return False
        answer.set_result(approved)
        return True

    def answer_tool(self, tool_call_id: str, choice: str) -> bool:
        """The user's answer about a client tool set to Ask: "once", "always" or "deny";
        ``False`` when the question no longer waits."""
        answer = self._tool_questions.get(tool_call_id)
        if answer is None or answer.done():
            return False
        answer.set_result(choice)
        return True

    async def _ask_tool(self, call: ClientToolCall, seconds: float) -> str:
        """The launcher's tool asker: ask the window, wait for the answer (the
        conversation gives up when the tool's time is up, and that is a refusal)."""
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tool_questions[call.tool_call_id] = answer
        self.toolPermissionRequested.emit(call, seconds)
        try:
            return await answer
        finally:
            self._tool_questions.pop(call.tool_call_id, None)
            self.approvalClosed.emit(call.tool_call_id)

    async def _ask_approval(self, call: McpToolCall) -> bool:
        """The conversation's approver: ask the window, wait for the answer."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._approvals[call.tool_call_id] = answer
        self.approvalRequested.emit(call)
        approved: bool | None = None
        try:
            async with asyncio.timeout(approval_time_s(call)):
                approved = await answer
        except TimeoutError:
            approved = None
        finally:
            self._approvals.pop(call.tool_call_id, None)
            self.approvalClosed.emit(call.tool_call_id)
        self.transcript.approval_answered(call.tool_call_id, approved)
        return bool(approved)

    def _deny_pending_approvals(self) -> None:
        for answer in list(self._approvals.values()):
            if not answer.done():
                answer.set_result(False)

    def set_muted(self, muted: bool) -> None:
        self._muted = muted
        if self._conversation is not None:
            self._conversation.set_mic_muted(muted)

    def set_volume(self, volume: float) -> None:
        self._volume = min(1.0, max(0.0, volume))
        if self._conversation is not None:
            self._conversation.set_volume(self._volume)

    def set_text_only(self, text_only: bool) -> None:
        """Text or voice for the next conversation (a running one keeps its own)."""
        plan = self.launcher.plan
        if plan.options.text_only != text_only:
            options = replace(plan.options, text_only=text_only)
            self.launcher.set_plan(replace(plan, options=options))

    def switch_devices(
        self, *, input_device: int | None = None, output_device: int | None = None
    ) -> None:
        """Move the running conversation, or hands-free's listening, to other devices; a
        failure is a banner. Nothing to move: the next start opens the chosen ones."""
        engine = self.launcher.engine
        in_call = self.is_voice and self.status == "connected"
        if engine is None or not (in_call or engine.is_listening):
            return
        self.runner.run(
            engine.switch_devices(input_device=input_device, output_device=output_device),
            what="switch the audio device",
            on_done=lambda _: self.audioChanged.emit(),
        )

    def set_plan(self, plan: LaunchPlan) -> None:
        """Use ``plan`` from the next Start on (showing reasoning from now on). Hands-free
        picks it up from its next conversation (a new hotword: switch it off and on)."""
        self.launcher.set_plan(plan)
        self.transcript.show_reasoning = plan.show_reasoning
        self.talk.key = plan.talk_key
        self.talkChanged.emit()

    # ------------------------------------------------------------------ hands-free

    def set_hands_free(self, on: bool) -> None:
        """Switch the hotword loop on (it opens the microphone and listens; nothing is
        sent until the hotword is heard) or off (a running conversation ends, the
        devices close). A failure is a banner and the switch goes back off."""
        if on and self._hands_free is None:
            if self.status != "disconnected" or self._starting:
                self.errorRaised.emit(
                    "End the conversation first: hands-free starts conversations itself."
                )
                self._set_hands_free_state(LoopState.OFF, "")
                return
            try:
                loop = launcher_loop(
                    self.launcher,
                    approver=self._ask_approval,
                    tool_asker=self._ask_tool,
                    on_event=self._on_loop_event,
                )
            except HandsFreeUnavailable as exc:
                self.errorRaised.emit(str(exc))
                self._set_hands_free_state(LoopState.OFF, str(exc))
                return
            self._hands_free = loop
            self._hands_free_task = self.runner.run(
                self._run_hands_free(loop), what="listen for the hotword"
            )
        elif not on and self._hands_free is not None:
            self._hands_free.stop()

    def restart_hands_free(self) -> None:
        """Switch hands-free off and on again (another hotword was chosen)."""
        if self._hands_free is None:
            return

        async def restart() -> None:
            await self._stop_hands_free()
            self.set_hands_free(True)

        self.runner.run(restart(), what="listen for the new hotword")

    def pause_hands_free(self, paused: bool) -> None:
        """While paused the loop does not hear the microphone (Settings records takes)."""
        if self._hands_free is not None:
            self._hands_free.set_paused(paused)

    async def _run_hands_free(self, loop: HandsFreeLoop) -> None:
        try:
            await loop.run()
        except HandsFreeUnavailable as exc:
            self.errorRaised.emit(str(exc))
        finally:
            if self._hands_free is loop:
                self._hands_free = None
                self._hands_free_task = None
            # Once more now that hands_free is False: the window's switch follows.
            self._set_hands_free_state(LoopState.OFF, "Hands-free is off.")

    async def _stop_hands_free(self) -> None:
        task = self._hands_free_task
        if self._hands_free is not None:
            self._hands_free.stop()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _on_loop_event(self, event: LoopEvent) -> None:
        match event:
            case StateChanged(state=state, sentence=sentence):
                self._set_hands_free_state(state, sentence)
            case HotwordHeard(hotword=hotword, confidence=confidence) if confidence is not None:
                self.transcript.add_notice(f"Heard “{hotword}” (confidence {confidence:.2f}).")
            case ConversationBegins(conversation=conversation):
                self._attach(conversation)
                conversation.set_mic_muted(self._muted)
                conversation.set_volume(self._volume)
            case ConversationOver(details=None, sentence=sentence):
                self.errorRaised.emit(sentence)
            case LoopProblem(sentence=sentence):
                self.errorRaised.emit(sentence)
            case _:
                pass

    def _set_hands_free_state(self, state: LoopState, sentence: str) -> None:
        self._hands_free_state = state
        self._hands_free_sentence = sentence
        self.handsFreeChanged.emit(state.value, sentence)

    async def shutdown(self) -> None:
        """End the conversation, stop the demo agent, release the devices. Open MCP
        approval questions are denied first (closing the window is a "no")."""
        if self._approvals:
            self._deny_pending_approvals()
            await asyncio.sleep(0.05)  # let the conversation send the denials
        await self._stop_hands_free()
        if self._conversation is not None and self.status != "disconnected":
            await self._conversation.end()
        await self.runner.shutdown()
        await self.launcher.close()
        self._detach()

    # ------------------------------------------------------------------ events

    def on_levels(self, input_rms: float, output_rms: float) -> None:
        """The audio engine's meters (loop thread)."""
        self.levelsChanged.emit(input_rms, output_rms)

    def _attach(self, conversation: Conversation) -> None:
        self._detach()
        self._conversation = conversation
        self._unsubscribe = conversation.add_listener(self._on_event)

    def _detach(self) -> None:
        if callable(self._unsubscribe):
            self._unsubscribe()
        self._unsubscribe = None

    def _set_starting(self, starting: bool) -> None:
        if starting != self._starting:
            self._starting = starting
            self.startingChanged.emit(starting)

    def _on_event(self, event: SessionEvent) -> None:
        log_event(event)
        self.transcript.apply(event)
        match event:
            case StatusChanged(status=status):
                if status.value != "connecting":
                    # Starting is over once connecting is: a text conversation connects
                    # while start() is still unwinding, and Start must not say
                    # "Starting…" beside "Connected".
                    self._set_starting(False)
                self.statusChanged.emit(status.value)
                if status.value == "connected":
                    self.audioChanged.emit()
            case ModeChanged(mode=mode):
                self.modeChanged.emit(mode.value)
            case CanSendFeedbackChanged(can_send_feedback=can):
                self.canSendFeedbackChanged.emit(can)
            case FeedbackChanged(rating=rating):
                self.feedbackChanged.emit(rating)
            case McpApprovalClosed(tool_call_id=call_id):
                self.approvalClosed.emit(call_id)
            case AgentTypingChanged(is_typing=typing):
                self.agentTypingChanged.emit(typing)
            case LatencyMeasured(ms=ms):
                self.latencyChanged.emit(ms)
            case ErrorReported(message=message):
                # Most errors do not end the call; the server closes it when it must.
                self.errorRaised.emit(message)
            case AudioUnavailable(message=message):
                self.errorRaised.emit(message)
                self.audioChanged.emit()
            case AudioNotice():
                self.audioChanged.emit()
            case Disconnected(details=details):
                if details.is_error:
                    self.errorRaised.emit(details.message)
                self.levelsChanged.emit(0.0, 0.0)
                self.ended.emit(details)
            case _:
                pass
