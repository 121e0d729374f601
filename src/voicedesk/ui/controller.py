"""The window's link to conversations: a QObject that turns session events into Qt signals.

One :class:`ConversationController` lives as long as the window. Each Start builds
a new :class:`~voicedesk.session.Conversation` through the
:class:`~voicedesk.launch.Launcher`; the controller listens to it, folds its events
into the :class:`~voicedesk.session.transcript.Transcript`, and re-emits what views
need. Everything runs on the Qt thread, which is the asyncio loop's (qasync).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from voicedesk.launch import Launcher, LaunchPlan
from voicedesk.protocol.machine import (
    CanSendFeedbackChanged,
    Disconnected,
    ErrorReported,
    LatencyMeasured,
    ModeChanged,
    StatusChanged,
)
from voicedesk.session import (
    AudioNotice,
    AudioUnavailable,
    Conversation,
    SessionEvent,
)
from voicedesk.session.transcript import Transcript
from voicedesk.ui.tasks import AsyncRunner

logger = logging.getLogger(__name__)


class ConversationController(QObject):
    """Start/end, messages, feedback, mute, volume and devices for the window."""

    statusChanged = Signal(str)
    modeChanged = Signal(str)
    canSendFeedbackChanged = Signal(bool)
    startingChanged = Signal(bool)
    latencyChanged = Signal(int)
    levelsChanged = Signal(float, float)
    errorRaised = Signal(str)
    audioChanged = Signal()
    ended = Signal(object)

    def __init__(self, launcher: Launcher, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.launcher = launcher
        self.transcript = Transcript()
        self.runner = AsyncRunner(self.errorRaised.emit)
        self._conversation: Conversation | None = None
        self._unsubscribe: object = None
        self._starting = False
        self._muted = False
        self._volume = 1.0

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
        return self.status == "disconnected" and not self._starting

    @property
    def can_end(self) -> bool:
        return self.status == "connected"

    @property
    def can_send_feedback(self) -> bool:
        return self._conversation is not None and self._conversation.can_send_feedback

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
        """Start a conversation with the current plan (no-op unless :attr:`can_start`)."""
        if not self.can_start:
            return
        self._set_starting(True)
        self.runner.run(self._start(), what="start the conversation")

    async def _start(self) -> bool:
        try:
            conversation = await self.launcher.new_conversation()
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
        if self._conversation is None or not self._conversation.send_feedback(like):
            return False
        self.transcript.add_notice(
            "Thanks: feedback sent (like)." if like else "Thanks: feedback sent (dislike)."
        )
        return True

    def set_muted(self, muted: bool) -> None:
        self._muted = muted
        if self._conversation is not None:
            self._conversation.set_mic_muted(muted)

    def set_volume(self, volume: float) -> None:
        self._volume = min(1.0, max(0.0, volume))
        if self._conversation is not None:
            self._conversation.set_volume(self._volume)

    def switch_devices(
        self, *, input_device: int | None = None, output_device: int | None = None
    ) -> None:
        """Move the running conversation to other devices; a failure is a banner."""
        engine = self.launcher.engine
        if engine is None or not self.is_voice or self.status != "connected":
            return
        self.runner.run(
            engine.switch_devices(input_device=input_device, output_device=output_device),
            what="switch the audio device",
            on_done=lambda _: self.audioChanged.emit(),
        )

    def set_plan(self, plan: LaunchPlan) -> None:
        """Use ``plan`` from the next Start on."""
        self.launcher.set_plan(plan)

    async def shutdown(self) -> None:
        """End the conversation, stop the demo agent, release the devices."""
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
        self.transcript.apply(event)
        match event:
            case StatusChanged(status=status):
                self.statusChanged.emit(status.value)
                if status.value == "connected":
                    self.audioChanged.emit()
            case ModeChanged(mode=mode):
                self.modeChanged.emit(mode.value)
            case CanSendFeedbackChanged(can_send_feedback=can):
                self.canSendFeedbackChanged.emit(can)
            case LatencyMeasured(ms=ms):
                self.latencyChanged.emit(ms)
            case ErrorReported(message=message):
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
