"""Terminal mode: one conversation in the terminal, as the Raspberry Pi tutorial's assistant.

Lines typed + Enter go to the agent as user messages. Commands: ``/context TEXT``,
``/like``, ``/dislike``, ``/mute``, ``/status``, ``/help``, ``/quit`` (or Ctrl+C,
or end of input). On an interactive POSIX terminal every keystroke also sends
``user_activity`` (throttled), so the agent holds back while you type.

When one of the agent's MCP tools needs the user's approval, :meth:`ConsoleClient.ask_approval`
(the conversation's approver) prints a ``[approve?] … [y/n]`` question; the next
line typed ``y``/``yes`` or ``n``/``no`` answers it (other lines go on as usual). In
piped input the script's next line is the answer. No answer in time is a denial.

Hands-free (``--wake-word``, :meth:`ConsoleClient.run_hands_free`): the tutorial's
loop. The console listens for the hotword (nothing leaves the computer meanwhile),
each conversation starts when it is heard and the console listens again when it
ends. ``/end`` ends a conversation, ``/start`` starts one without the hotword,
``/quit``, Ctrl+C (or SIGTERM) stop the loop; the end of piped input does not, so it
can run as a service.

Push-to-talk (``--push-to-talk``): the microphone sends silence until Ctrl+T (a
terminal has no key-up, so the key toggles) or ``/talk``; the prompt shows the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

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
)
from voicedesk.launch import reconnect
from voicedesk.protocol.events import (
    AgentReasoningResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    AgentToolRequest,
    AgentToolResponse,
    ClientToolCall,
    ExternalAgentConnected,
    ExternalAgentDisconnected,
    GuardrailTriggered,
    McpConnectionStatus,
    McpToolCall,
    RichContent,
    UserTranscript,
)
from voicedesk.protocol.machine import (
    CanSendFeedbackChanged,
    Connected,
    Disconnected,
    ErrorReported,
    ModeChanged,
    StatusChanged,
)
from voicedesk.session import (
    AgentTypingChanged,
    AudioNotice,
    AudioUnavailable,
    Conversation,
    Notice,
    SessionEvent,
    ToolCallFinished,
    ToolCallStarted,
    TransportNotice,
)
from voicedesk.session.transcript import (
    LineKind,
    Speaker,
    ToolState,
    Transcript,
    approval_question,
    approval_time_s,
    format_parameters,
    log_event,
)

HELP = (
    "Type a message and press Enter. Commands: /context TEXT (background info for the agent), "
    "/like, /dislike (rate the latest answer; the same again clears it), /mute, /status, /quit."
)
HANDS_FREE_HELP = (
    "Say the hotword to start a conversation. Commands: /start (start one now), /end (end "
    "it and listen again), /status, /quit (stop listening and exit)."
)
TALK_KEY = "Ctrl+T"
TALK_HELP = f"{TALK_KEY} or /talk turns the microphone on and off (push-to-talk)."
_CTRL_T = "\x14"
GREETING_WAIT_S = 5.0
REPLY_WAIT_S = 15.0
QUESTION_WAIT_S = 3.0  # a script's "y"/"n" waits this long for the question it answers
SCRIPT_END_WAIT_S = 1.0  # after a script's last line, for the agent to hang up itself
SPEECH_START_WAIT_S = 3.0  # the reply's text comes before its audio is heard
SPEECH_WAIT_S = 60.0
PROMPT = "> "
YES = frozenset({"y", "yes"})
NO = frozenset({"n", "no"})
#: Events whose lines the console takes from a :class:`Transcript` of its own: tools the
#: agent runs elsewhere, MCP calls, and what the agent shows besides its replies.
_TRANSCRIBED = (
    AgentToolRequest,
    AgentToolResponse,
    McpToolCall,
    McpConnectionStatus,
    AgentReasoningResponsePart,
    RichContent,
    GuardrailTriggered,
    ExternalAgentConnected,
    ExternalAgentDisconnected,
)


@dataclass(frozen=True)
class Continuer:
    """How the console continues a conversation the network dropped: whether it can
    (``available()``), and the conversation that picks it up (``follow()``)."""

    available: Callable[[], bool]
    follow: Callable[[], Awaitable[Conversation]]
    #: The waits of the automatic tries after a drop (none: the user is asked at once).
    retry_delays: Callable[[], Iterable[float]] | None = None


def _answer_word(text: str) -> str | None:
    """An answer to a question: "yes", "no", "always" (a/always), or ``None``."""
    if text.strip().lower() in ("a", "always"):
        return "always"
    answer = yes_or_no(text)
    return None if answer is None else ("yes" if answer else "no")


def yes_or_no(text: str) -> bool | None:
    """``True`` for y/yes, ``False`` for n/no (any case), ``None`` for anything else."""
    word = text.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    return None


class TerminalInput:
    """Reads the user's lines without blocking the event loop.

    Interactive POSIX terminals are read key by key (cbreak mode, our own echo), so
    typing is seen as it happens; anything else (a pipe, Windows) is read line by line
    in a daemon thread.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stdin: TextIO,
        out: TextIO,
        on_line: Callable[[str], None],
        on_typing: Callable[[], None],
        on_eof: Callable[[], None],
        on_talk_key: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._stdin = stdin
        self._out = out
        self._on_line = on_line
        self._on_typing = on_typing
        self._on_eof = on_eof
        self._on_talk_key = on_talk_key
        self._status = ""
        self._buffer = ""
        self._saved_tty: Any = None
        self._fd: int | None = None
        self.interactive = False

    def start(self) -> None:
        fd = self._fileno()
        if fd is not None and os.isatty(fd) and sys.platform != "win32":
            self._start_keys(fd)
        else:
            threading.Thread(target=self._read_lines, name="console-input", daemon=True).start()

    def _fileno(self) -> int | None:
        try:
            return self._stdin.fileno()
        except (AttributeError, OSError, ValueError):
            return None

    def _start_keys(self, fd: int) -> None:
        import termios
        import tty

        self._fd = fd
        self._saved_tty = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self.interactive = True
        self._loop.add_reader(fd, self._on_key)
        self._redraw()

    def stop(self) -> None:
        if self._fd is not None and self._saved_tty is not None:
            import termios

            self._loop.remove_reader(self._fd)
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_tty)
            self._fd = None
            self._out.write("\r\033[K")
            self._out.flush()

    def print_line(self, text: str) -> None:
        """Print above the line being typed."""
        if self.interactive:
            self._out.write("\r\033[K" + text + "\n")
            self._redraw()
        else:
            self._out.write(text + "\n")
            self._out.flush()

    def set_status(self, status: str) -> None:
        """A state shown before the prompt (push-to-talk's), ``""`` for none."""
        self._status = status
        if self.interactive:
            self._redraw()

    def _redraw(self) -> None:
        status = f"[{self._status}] " if self._status else ""
        self._out.write("\r\033[K" + status + PROMPT + self._buffer)
        self._out.flush()

    def _on_key(self) -> None:
        assert self._fd is not None
        data = os.read(self._fd, 1024).decode("utf-8", errors="replace")
        if not data:
            self._on_eof()
            return
        for ch in data:
            if ch in ("\n", "\r"):
                line, self._buffer = self._buffer, ""
                self._out.write("\r\033[K")
                self._on_line(line)
            elif ch in ("\x7f", "\b"):
                self._buffer = self._buffer[:-1]
            elif ch == "\x04":  # Ctrl+D
                if not self._buffer:
                    self._on_eof()
                    return
            elif ch == "\x15":  # Ctrl+U
                self._buffer = ""
            elif ch == _CTRL_T and self._on_talk_key is not None:
                self._on_talk_key()
            elif ch.isprintable():
                self._buffer += ch
                self._on_typing()
        self._redraw()

    def _read_lines(self) -> None:
        while True:
            try:
                line = self._stdin.readline()
            except (OSError, ValueError):
                line = ""
            try:
                if not line:
                    self._loop.call_soon_threadsafe(self._on_eof)
                    return
                self._loop.call_soon_threadsafe(self._on_line, line.rstrip("\r\n"))
            except RuntimeError:  # the loop is gone: we are exiting
                return


class ConsoleClient:
    """Runs conversations with terminal input and output: one with :meth:`run`, or one
    after another with :meth:`run_hands_free`; each gives the exit code.

    ``show_reasoning``: print the agent's reasoning (``[thinking] …``) when it sends it.
    Give :meth:`ask_approval` to the conversation as its approver (``app.run_console``
    does), so MCP tools that need approval ask here. ``talk``: push-to-talk, toggled by
    Ctrl+T or ``/talk`` (``None``: no push-to-talk).
    """

    def __init__(
        self,
        conversation: Conversation | None = None,
        *,
        stdin: TextIO | None = None,
        out: TextIO | None = None,
        show_reasoning: bool = False,
        talk: PushToTalk | None = None,
    ) -> None:
        self.conversation = conversation
        self._stdin = stdin or sys.stdin
        self._out = out or sys.stdout
        self._input: TerminalInput | None = None
        self._show_reasoning = show_reasoning
        self._talk = talk
        self._feedback_hint_shown = False
        self._was_connected = False
        self._quit = asyncio.Event()
        self._continue_requested = False  # /continue typed as the conversation dropped
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        # Agent answers (or errors instead of one) so far; a script waits for the next.
        self._agent_responses = 0
        self._agent_responded = asyncio.Event()
        self._mode_changed = asyncio.Event()
        self._pending: set[asyncio.Task[object]] = set()
        # Open questions, oldest first: their answer, "yes", "no" or "always".
        self._questions: list[asyncio.Future[str]] = []
        self._shown = Transcript(show_reasoning=show_reasoning)
        self._printed: dict[int, str] = {}
        self._shown.set_listener(self._on_shown_line)
        self._unsubscribe: Callable[[], None] | None = None
        self._hands_free: HandsFreeLoop | None = None
        self._listened_before = False
        self._help_shown = False
        if talk is not None:
            talk.on_change = self._on_talk_changed

    def say(self, text: str) -> None:
        if self._input is not None:
            self._input.print_line(text)
        else:
            self._out.write(text + "\n")
            self._out.flush()

    async def run(self, continuer: Continuer | None = None) -> int:
        """The conversation given, from connecting to its end; when the network drops
        it and ``continuer`` can pick it up, the user is asked (``/continue``) and the
        next conversation runs here too."""
        conversation = self.conversation
        assert conversation is not None, "run() needs the conversation"
        loop = asyncio.get_running_loop()
        self._attach(conversation)
        self._install_signal_handlers(loop)
        details = None
        try:
            self.say("Connecting…")
            # Read keys from now on: what is typed while connecting waits in the queue
            # instead of being echoed raw by the terminal.
            self._start_input(loop)
            self._say_talk_state()
            started = False
            while True:
                if not started and not await conversation.start():
                    return 1
                ended = asyncio.ensure_future(conversation.wait_disconnected())
                consumer = asyncio.ensure_future(self._consume_lines())
                quit_requested = asyncio.ensure_future(self._quit.wait())
                await asyncio.wait({ended, quit_requested}, return_when=asyncio.FIRST_COMPLETED)
                quit_requested.cancel()
                consumer.cancel()
                if not ended.done():
                    await conversation.end()
                details = await ended
                following = await self._offer_continue(continuer)
                if following is None:
                    break
                conversation, started = following
        finally:
            self._stop_input()
            self._remove_signal_handlers(loop)
            self._detach()
        return 1 if details is None or details.is_error else 0

    async def _offer_continue(
        self, continuer: Continuer | None
    ) -> tuple[Conversation, bool] | None:
        """After a drop: the conversation that picks it up, and whether it is already
        connected (the automatic tries connected it), or ``None`` to stop. Tries
        automatically first when ``continuer`` says so, then asks (``/continue``)."""
        if continuer is None or self._quit.is_set() or not continuer.available():
            return None
        if continuer.retry_delays is not None and not self._continue_requested:
            connected = await self._retry(continuer, continuer.retry_delays())
            if connected is not None:
                return connected, True
            if self._quit.is_set() or not continuer.available():
                return None
        requested, self._continue_requested = self._continue_requested, False
        if not requested:
            self.say(
                "The connection dropped. Type /continue to pick the conversation up where "
                "it stopped (the agent is told the recent turns), or /quit."
            )
        while not requested:
            line = await self._lines.get()
            word = line.strip().lower() if line is not None else "/quit"
            if word in ("/quit", "n", "no", "/end"):
                return None
            requested = word in ("/continue", "y", "yes")
            if not requested:
                self.say("Type /continue or /quit.")
        conversation = await continuer.follow()
        self._attach(conversation)
        self.say("Continuing…")
        return conversation, False

    async def _retry(self, continuer: Continuer, delays: Iterable[float]) -> Conversation | None:
        """The automatic tries: the connected conversation, or ``None`` when they gave up
        or the user stopped them (Enter stops them, /quit quits)."""
        delays = list(delays)

        def on_wait(attempt: int, seconds: float) -> None:
            self.say(
                f"The connection dropped. Trying to continue in {seconds:.0f} s (try "
                f"{attempt} of {len(delays)}; press Enter to stop trying, /quit to quit)…"
            )

        async def follow() -> Conversation:
            conversation = await continuer.follow()
            self._attach(conversation)
            return conversation

        tries = asyncio.ensure_future(reconnect(follow, delays, on_wait=on_wait))
        typed = asyncio.ensure_future(self._lines.get())
        quit_requested = asyncio.ensure_future(self._quit.wait())
        try:
            await asyncio.wait({tries, typed, quit_requested}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            quit_requested.cancel()
            typed.cancel()
        if not tries.done():
            tries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tries
            line = typed.result() if typed.done() and not typed.cancelled() else None
            if line is None or line.strip().lower() in ("/quit", "/end"):
                self._quit.set()
            else:
                self.say("Stopped trying.")
            return None
        if typed.done() and not typed.cancelled() and (line := typed.result()) is not None:
            self._lines.put_nowait(line)  # typed as the last try connected: not lost
        conversation = tries.result()
        if conversation is None:
            self.say("Could not continue the conversation automatically.")
        return conversation

    async def run_hands_free(self, hands_free: HandsFreeLoop) -> int:
        """The assistant loop until ``/quit``, Ctrl+C or SIGTERM. Give
        :meth:`on_loop_event` to ``hands_free`` as its ``on_event``. Exit code 1 when
        hands-free cannot run at all (no hotword model, say), else 0."""
        loop = asyncio.get_running_loop()
        self._hands_free = hands_free
        self._install_signal_handlers(loop, terminate=True)
        self._start_input(loop)
        consumer = asyncio.ensure_future(self._consume_hands_free_lines())
        runner = asyncio.ensure_future(hands_free.run())
        quit_requested = asyncio.ensure_future(self._quit.wait())
        try:
            await asyncio.wait({runner, quit_requested}, return_when=asyncio.FIRST_COMPLETED)
            hands_free.stop()
            try:
                await runner
            except HandsFreeUnavailable as exc:
                self.say(f"Hands-free cannot start: {exc}")
                return 1
        finally:
            quit_requested.cancel()
            consumer.cancel()
            if not runner.done():  # cancelled from outside
                runner.cancel()
                with contextlib.suppress(BaseException):
                    await runner
            self._stop_input()
            self._remove_signal_handlers(loop)
            self._detach()
            self._hands_free = None
        return 0

    def on_loop_event(self, event: LoopEvent) -> None:
        """The hands-free loop's events: said on the terminal; each new conversation is
        listened to from its start."""
        match event:
            case StateChanged(state=LoopState.LISTENING, sentence=sentence):
                if not self._listened_before:
                    self._listened_before = True
                    sentence += " (nothing leaves this computer until you say it)"
                self.say(sentence)
            case StateChanged(state=LoopState.OPENING | LoopState.OFF, sentence=sentence):
                self.say(sentence)
            case StateChanged(state=LoopState.CONNECTING):
                self.say("Connecting…")
            case HotwordHeard(hotword=hotword, confidence=confidence):
                how = f" (confidence {confidence:.2f})" if confidence is not None else ""
                self.say(f"Heard “{hotword}”{how}." if how else "Starting a conversation.")
            case ConversationBegins(conversation=conversation):
                self._attach(conversation)
            case ConversationOver(details=details, sentence=sentence):
                if details is None:  # it never got far enough to say so itself
                    self.say(sentence)
                self._detach()
                self.conversation = None
            case LoopProblem(sentence=sentence):
                self.say(f"[hands-free] {sentence}")
            case _:
                pass

    # ------------------------------------------------------------------ plumbing

    def _attach(self, conversation: Conversation) -> None:
        """Listen to ``conversation``; what was shown of the last one is forgotten."""
        self._detach()
        self.conversation = conversation
        self._was_connected = False
        self._agent_responses = 0
        self._questions.clear()
        self._shown = Transcript(show_reasoning=self._show_reasoning)
        self._shown.set_listener(self._on_shown_line)
        self._printed = {}
        self._unsubscribe = conversation.add_listener(self._on_event)

    def _detach(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def _start_input(self, loop: asyncio.AbstractEventLoop) -> None:
        self._input = TerminalInput(
            loop,
            self._stdin,
            self._out,
            self._lines.put_nowait,
            self._on_typing,
            lambda: self._lines.put_nowait(None),
            on_talk_key=self._toggle_talk if self._talk is not None else None,
        )
        self._input.start()
        self._show_talk_state()

    def _stop_input(self) -> None:
        if self._input is not None:
            self._input.stop()

    def _install_signal_handlers(
        self, loop: asyncio.AbstractEventLoop, *, terminate: bool = False
    ) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, self._on_interrupt)
        if terminate:  # a service manager stopping the hands-free loop
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGTERM, self._on_interrupt)

    def _remove_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)

    def _on_interrupt(self) -> None:
        self._quit.set()
        conversation = self.conversation
        if conversation is not None and conversation.status.value == "connecting":
            self._spawn(conversation.end())

    # ------------------------------------------------------------------ push-to-talk

    def _toggle_talk(self) -> None:
        if self._talk is None or not self._talk.enabled:
            self.say("Push-to-talk is off (start voicedesk with --push-to-talk to use it).")
            return
        self._talk.toggle()

    def _on_talk_changed(self) -> None:
        self._show_talk_state()
        self._say_talk_state()

    def _show_talk_state(self) -> None:
        if self._input is not None and self._talk is not None:
            self._input.set_status(self._talk.text if self._talk.enabled else "")

    def _say_talk_state(self) -> None:
        talk = self._talk
        if talk is None or not talk.enabled:
            return
        how = TALK_KEY if self._input is not None and self._input.interactive else "/talk"
        if talk.talking:
            self.say(f"(talking: the microphone is on; {how} closes it)")
        else:
            self.say(f"(push-to-talk: the microphone sends silence; {how} to talk)")

    # ------------------------------------------------------------------ input

    @property
    def _conv(self) -> Conversation:
        """The conversation being held (only asked for while there is one)."""
        assert self.conversation is not None
        return self.conversation

    def _help(self) -> str:
        text = HELP
        if self._hands_free is not None:
            text = text.replace("/quit.", "/end (back to listening), /quit (exit).")
        if self._talk is not None and self._talk.enabled:
            text += " " + TALK_HELP
        return text

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _in_conversation(self) -> bool:
        loop = self._hands_free
        return loop is not None and loop.state in (LoopState.CONNECTING, LoopState.CONVERSING)

    async def _consume_hands_free_lines(self) -> None:
        """Lines in the hands-free loop: to the conversation while there is one, else
        the listening commands. No line ever starts a conversation by itself: nothing
        is sent until the hotword is heard (or ``/start``)."""
        assert self._input is not None
        while (line := await self._lines.get()) is not None:
            if self._in_conversation() and self.conversation is not None:
                self._on_line(line)
            else:
                self._on_listening_line(line)
        if self._input.interactive:  # Ctrl+D; piped input ending is no reason to stop
            self._quit.set()

    def _on_listening_line(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        loop = self._hands_free
        assert loop is not None
        command = text.partition(" ")[0]
        if command == "/quit":
            self._quit.set()
        elif command == "/start":
            if not loop.trigger():
                self.say("Not listening yet: wait for “Listening for …”.")
        elif command == "/talk":
            self._toggle_talk()
        elif command == "/end":
            self.say("There is no conversation to end.")
        elif command == "/help":
            self.say(HANDS_FREE_HELP + (" " + TALK_HELP if self._talk is not None else ""))
        elif command == "/status":
            talk = ""
            if self._talk is not None and self._talk.enabled:
                talk = " Push-to-talk: " + ("talking." if self._talk.talking else "silent.")
            state = {
                LoopState.LISTENING: f"Listening for “{loop.hotword}”; nothing is sent until "
                "it is heard.",
                LoopState.OPENING: "Opening the microphone.",
            }.get(loop.state, f"Hands-free: {loop.state.value}.")
            self.say(state + talk)
        else:
            self.say(
                f"(not in a conversation: say “{loop.hotword}” or type /start first; "
                "nothing was sent)"
            )

    def _on_typing(self) -> None:
        if self.conversation is not None:
            self.conversation.user_typing()

    async def _consume_lines(self) -> None:
        """Handle lines in order. Piped (non-interactive) input is a script: each message
        waits for the agent's answer, so ``voicedesk console < script.txt`` reads well."""
        assert self._input is not None
        scripted = not self._input.interactive
        if scripted:
            await self._wait_for_agent(0, GREETING_WAIT_S)
            await self._wait_until_heard()
        while (line := await self._lines.get()) is not None:
            if scripted and not self._questions and yes_or_no(line) is not None:
                await self._wait_for_question(QUESTION_WAIT_S)
            before = self._agent_responses
            if self._on_line(line, scripted=scripted) and scripted:
                await self._wait_for_agent(before, REPLY_WAIT_S)
                await self._wait_until_heard()
        if scripted and not self._quit.is_set():
            # The script is over, the agent may not be: it can hang up after its last
            # answer (a default agent just closes, without an end_call event first).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SCRIPT_END_WAIT_S):
                    await self._conv.wait_disconnected()
        self._quit.set()

    async def _wait_until_heard(self) -> None:
        """In a voice conversation, let the agent finish speaking before the script
        goes on (a script's next line would interrupt it)."""
        conv = self._conv
        if conv.is_text_only:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SPEECH_START_WAIT_S):
                while not conv.is_speaking and self._still_talking():
                    await self._next_mode_change()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SPEECH_WAIT_S):
                while conv.is_speaking and self._still_talking():
                    await self._next_mode_change()

    async def _next_mode_change(self) -> None:
        self._mode_changed.clear()
        await self._mode_changed.wait()

    async def _wait_for_agent(self, seen: int, timeout: float) -> None:
        """Until the agent answered (or asks for an approval, or the call is over)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while (
                    self._agent_responses <= seen and not self._questions and self._still_talking()
                ):
                    self._agent_responded.clear()
                    await self._agent_responded.wait()

    async def _wait_for_question(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self._questions and self._still_talking():
                    self._agent_responded.clear()
                    await self._agent_responded.wait()

    def _still_talking(self) -> bool:
        conversation = self.conversation
        return (
            not self._quit.is_set()
            and conversation is not None
            and conversation.status.value == "connected"
        )

    def _on_line(self, line: str, *, scripted: bool = False) -> bool:
        """Act on one line; ``True`` when it went to the agent as a message (or answered
        its question). With an approval question open, y/yes/n/no answers it; in a
        script (``scripted``) the next line that is not a command answers it."""
        text = line.strip()
        if not text:
            return False
        if self._questions and not text.startswith("/"):
            answer = _answer_word(text)
            if answer is None and scripted:
                self.say(f"({text!r} is not y or n: taken as no)")
                answer = "no"
            if answer is not None:
                self._answer(answer)
                return True
        command, _, rest = text.partition(" ")
        conv = self._conv
        if command == "/quit":
            self._quit.set()
        elif command == "/end":
            if self._hands_free is None:
                self._quit.set()
            else:
                self._spawn(self._hands_free.end_conversation())
        elif command == "/talk":
            self._toggle_talk()
        elif command == "/continue":
            if conv.status.value == "connected":
                self.say("The conversation is still on: there is nothing to continue.")
            else:
                self._continue_requested = True
        elif command == "/help":
            self.say(self._help())
        elif command == "/context":
            if not rest.strip():
                self.say("Usage: /context TEXT")
            elif conv.send_contextual_update(rest.strip()):
                self.say("(context sent)")
            else:
                self.say("Not connected: the context was not sent.")
        elif command in ("/like", "/dislike"):
            if conv.send_feedback(command == "/like"):
                score = conv.feedback_rating
                self.say(f"(rated: {score})" if score else "(rating cleared)")
            else:
                self.say("There is no answer to rate yet.")
        elif command == "/mute":
            conv.set_mic_muted(not conv.is_mic_muted)
            self.say("Microphone muted." if conv.is_mic_muted else "Microphone on.")
        elif command == "/status":
            latency = f", latency {conv.latency_ms} ms" if conv.latency_ms is not None else ""
            mode = "text only" if conv.is_text_only else f"voice, agent {conv.mode.value}"
            rated = conv.feedback_rating
            rating = f", latest answer rated {rated}" if rated else ""
            self.say(f"{conv.status.value.capitalize()} ({mode}{latency}{rating}).")
        elif command.startswith("/") and len(command) > 1 and " " not in command:
            self.say(f"Unknown command {command}. {self._help()}")
        elif conv.send_user_message(text):
            return True
        else:
            self.say("Not connected: the message was not sent.")
        return False

    # ------------------------------------------------------------------ approvals

    async def ask_approval(self, call: McpToolCall) -> bool:
        """The conversation's approver: ask on the terminal, wait for y or n.

        No answer before the call's approval time runs out is a denial (said so).
        Cancelled by the conversation when the question is no longer wanted."""
        limit = approval_time_s(call)
        answer = await self._ask(
            f"[approve?] {approval_question(call)} [y/n] ({math.floor(limit)} s)", limit
        )
        approved = None if answer is None else answer != "no"
        self._shown.approval_answered(call.tool_call_id, approved)
        return bool(approved)

    async def ask_tool(self, call: ClientToolCall, seconds: float) -> str:
        """The launcher's tool asker, for client tools set to Ask: y runs it once, a
        (always) runs it and allows it from now on, n refuses; no answer within the
        tool's ``seconds`` refuses."""
        params = format_parameters(call.parameters)
        answer = await self._ask(
            f"[allow?] The agent wants to run {call.tool_name}({params}) on this computer. "
            f"Allow it? [y = this time, a = always, n = no] ({math.floor(seconds)} s)",
            seconds,
        )
        if answer is None:
            self.say(f"(no answer: {call.tool_name} was refused)")
        return {"yes": "once", "always": "always"}.get(answer or "", "deny")

    async def _ask(self, question: str, limit: float) -> str | None:
        """Ask on the terminal; the answer ("yes", "no", "always"), ``None`` if none
        came within ``limit`` seconds."""
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._questions.append(answer)
        self.say(question)
        self._agent_responded.set()  # a script's next line answers it
        try:
            async with asyncio.timeout(limit):
                return await answer
        except TimeoutError:
            return None
        finally:
            if answer in self._questions:
                self._questions.remove(answer)

    def _answer(self, word: str) -> None:
        """Answer the oldest open question."""
        answer = self._questions.pop(0)
        if not answer.done():
            answer.set_result(word)

    # ------------------------------------------------------------------ output

    def _on_shown_line(self, index: int, added: bool) -> None:
        """Print a line of the console's own transcript when it is new or says more."""
        line = self._shown.lines[index]
        if line.state is ToolState.AWAITING_APPROVAL or self._printed.get(index) == line.text:
            return
        if line.kind is LineKind.REASONING:
            if line.tentative:
                return  # printed whole, once it is complete
            text = f"[thinking] {line.text}"
        elif line.kind is LineKind.RICH_CONTENT:
            text = f"Agent: {line.text}"
        elif line.kind is LineKind.MCP_TOOL:
            text = f"[mcp] {line.text}"
        elif line.kind is LineKind.AGENT_TOOL:
            text = f"[tool] {line.text}"
        elif line.speaker is Speaker.ERROR:
            text = f"[error] {line.text}"
        else:
            text = f"[note] {line.text}"
        self._printed[index] = line.text
        self.say(text)

    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, ModeChanged | Disconnected):
            self._mode_changed.set()
        log_event(event)
        if isinstance(event, _TRANSCRIBED):
            self._shown.apply(event)
            return
        match event:
            case Connected(conversation_id=conversation_id):
                self._was_connected = True
                voice = "text only" if self._conv.is_text_only else "voice and text"
                # Hands-free: the commands once, not at every hotword.
                more = self._help() if not self._help_shown else "/end ends it, /help lists more."
                self._help_shown = self._hands_free is not None
                self.say(f"Connected ({voice}; conversation {conversation_id}). {more}")
            case StatusChanged(status=status) if status.value == "disconnecting":
                self.say("Disconnecting…")
            case AgentResponse(text=text):
                self.say(f"Agent: {text}")
                self._agent_responses += 1
                self._agent_responded.set()
            case AgentResponseCorrection(corrected_text=text) if text.strip():
                self.say(f"Agent (corrected): {text}")
            case UserTranscript(text=text):
                self.say(f"You (spoken): {text}")
            case ToolCallStarted(tool_name=name, parameters=params):
                self.say(f"[tool] {name}({format_parameters(params)}) …")
            case ToolCallFinished():
                self.say(self._tool_line(event))
            case CanSendFeedbackChanged(can_send_feedback=True) if not self._feedback_hint_shown:
                self._feedback_hint_shown = True
                self.say(
                    "(rate the latest answer with /like or /dislike; the same again clears it)"
                )
            case AgentTypingChanged(is_typing=True):
                self.say("(the agent is typing…)")
            case ErrorReported(message=message):
                # Most errors do not end the call: the server closes it if it must.
                self.say(f"[error] {message}")
                self._agent_responses += 1  # a script waiting for an answer goes on
                self._agent_responded.set()
            case AudioUnavailable(message=message) | AudioNotice(message=message):
                self.say(f"[audio] {message}")
            case TransportNotice(message=message):
                self.say(f"[connection] {message}")
            case Notice(message=message):
                self.say(f"[note] {message}")
            case Disconnected(details=details) if not self._was_connected:
                self.say(f"Could not start the conversation: {details.message}")
            case Disconnected(details=details):
                self.say(f"Disconnected: {details.message}")
                self._agent_responded.set()
            case _:
                pass

    @staticmethod
    def _tool_line(event: ToolCallFinished) -> str:
        outcome = f"failed: {event.message}" if event.is_error else f"-> {event.message}"
        detail = f" ({event.detail})" if event.detail else ""
        return f"[tool] {event.tool_name} {outcome}{detail} [{event.duration_ms:.0f} ms]"
