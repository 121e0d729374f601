"""Hands-free: the Raspberry Pi tutorial's assistant loop, and push-to-talk. No Qt here.

:class:`HandsFreeLoop` listens for the hotword, and when it is heard plays a chime and
holds a conversation on the devices already open; when the conversation ends (the
user, the agent or an error ended it) it chimes again and listens for the next one::

    opening -> listening -> (hotword) connecting -> conversing -> listening -> ...

While it listens for the hotword, nothing leaves the computer: the microphone's sound
goes only to the detector (a tap on the audio engine), no conversation exists and no
socket is open. The microphone and speaker stay open across the whole loop (the audio
engine's standby); a conversation's ``start()`` reuses them and its ``stop()`` goes
back to standby. An error never ends the loop: it is said in a sentence, and the loop
listens again (a microphone that will not open is tried again every few seconds).
Only :meth:`HandsFreeLoop.stop` ends it, and it releases the detector and the devices.

The console (``voicedesk console --wake-word``) and the window's Hands-free switch
both drive this class; they see it through :data:`LoopEvent`\\ s. It is written
against small protocols (:class:`StandbyEngine`, :class:`Detector`,
:class:`LoopConversation`), which :class:`~voicedesk.audio.engine.AudioEngine`, the
hotword detector and :class:`~voicedesk.session.Conversation` implement.

Threads: everything runs on the event loop's thread except the microphone tap (the
audio engine's DSP thread: it only hands samples to the detector, which must not
block) and the detector's ``on_detect`` callback (its worker thread: it only posts to
the loop with ``call_soon_threadsafe``).

:class:`PushToTalk` is the talk key's model: the window holds it while Space (or the
talk button) is down, the console toggles it; the audio engine sends silence unless
it is held, and keeps the last 200 ms flowing after it is let go.

The hotword helpers (:func:`train_hotword`, :class:`TakeRecorder`, :class:`ScoreProbe`)
back ``voicedesk hotword train|test`` and the Settings page that records takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from voicedesk.config import SecretRedactor
from voicedesk.protocol.errors import DisconnectDetails

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from voicedesk.launch import Launcher, ToolAsker
    from voicedesk.session import Approver

    #: Microphone samples: int16 mono (at :data:`TAP_RATE` from the tap).
    Samples = npt.NDArray[np.int16]

logger = logging.getLogger(__name__)

# numpy is imported where it is used: this module is on the window's start-up path.
#: The rate of the samples the microphone tap gives (and the detector takes).
TAP_RATE = 16000
DEFAULT_HOTWORD = "hey eleven"
#: A microphone that will not open is tried again after this long.
RETRY_S = 3.0
#: How long a microphone just opened may take to deliver before the loop says so.
FIRST_SOUND_S = 3.0
#: After the back-to-listening chime, the detector waits this long: the chime itself
#: (and the tail of the agent's voice) must not count as the hotword.
SETTLE_S = 0.35


# --------------------------------------------------------------------------- protocols


class StandbyEngine(Protocol):
    """What the loop needs of the audio engine (:class:`~voicedesk.audio.engine.AudioEngine`).

    ``on_listening_failure(sentence)`` is set by the loop: the engine calls it (on the
    loop thread) when the devices failed while listening and standby has ended.
    """

    on_listening_failure: Callable[[str], None] | None

    @property
    def is_listening(self) -> bool: ...

    async def listen(self) -> None:
        """Open microphone and speaker without a conversation: microphone chunks go
        only to the taps. Raises :class:`~voicedesk.audio.port.AudioStartError`."""

    async def stop_listening(self) -> None:
        """Close the devices (a conversation running on them keeps them)."""

    def add_mic_tap(self, tap: Callable[[Samples], None]) -> Callable[[], None]:
        """``tap(samples)`` gets every microphone chunk (int16 at 16 kHz) on the DSP
        thread; returns the function that removes it."""

    def play_cue(self, samples: Samples, rate: int) -> None:
        """Play a short sound (a chime) on the speaker."""


class Detection(Protocol):
    """A hotword heard: its name and the model's confidence (0..1)."""

    @property
    def name(self) -> str: ...

    @property
    def confidence(self) -> float: ...


class Detector(Protocol):
    """The hotword detector: fed from the microphone tap, calls back when it hears it."""

    def feed(self, samples: Samples) -> None:
        """Non-blocking; called on the audio engine's DSP thread."""

    def close(self) -> None:
        """Stop its worker; no callback after this returns."""


#: Builds a detector that calls ``on_detect(detection)`` (on its own thread).
DetectorFactory = Callable[[Callable[[Any], None]], Detector]


class LoopConversation(Protocol):
    """What the loop needs of a :class:`~voicedesk.session.Conversation`."""

    async def start(self) -> bool: ...

    async def end(self) -> None: ...

    async def wait_disconnected(self) -> DisconnectDetails | None: ...

    @property
    def last_disconnect(self) -> DisconnectDetails | None: ...


@dataclass(frozen=True, slots=True)
class Cue:
    """A short sound: int16 samples at ``rate`` Hz."""

    samples: Samples
    rate: int


@dataclass(frozen=True, slots=True)
class Cues:
    """The loop's sounds: ``wake`` when the hotword is heard, ``listening`` when it
    listens again after a conversation."""

    wake: Cue | None = None
    listening: Cue | None = None


# --------------------------------------------------------------------------- events


class LoopState(enum.Enum):
    OFF = "off"
    OPENING = "opening"  # opening the microphone
    LISTENING = "listening"  # for the hotword; nothing leaves the computer
    CONNECTING = "connecting"  # the hotword was heard: chime, the conversation starts
    CONVERSING = "conversing"


@dataclass(frozen=True, slots=True)
class StateChanged:
    state: LoopState
    sentence: str


@dataclass(frozen=True, slots=True)
class HotwordHeard:
    hotword: str  # its title, "Hey Eleven"
    confidence: float | None  # None: started by hand (the window's Start button)


@dataclass(frozen=True, slots=True)
class ConversationBegins:
    """A conversation was built and is about to ``start()``: a front end listens to it
    from now on (it sees every event, ``Connected`` included)."""

    conversation: Any


@dataclass(frozen=True, slots=True)
class ConversationOver:
    """The conversation ended; ``details`` say how (``None``: it never got that far,
    ``sentence`` says why)."""

    details: DisconnectDetails | None
    sentence: str


@dataclass(frozen=True, slots=True)
class LoopProblem:
    """Something went wrong; the loop goes on. ``sentence`` says what and what next."""

    sentence: str


LoopEvent = StateChanged | HotwordHeard | ConversationBegins | ConversationOver | LoopProblem


class HandsFreeUnavailable(Exception):
    """Hands-free cannot run at all (no hotword model, an unknown hotword); a sentence."""


def default_cues() -> Cues:
    """The chimes of :mod:`voicedesk.audio.cues`: rising when a conversation starts,
    falling when the loop listens again."""
    from voicedesk.audio.cues import CUE_RATE, conversation_cue, listening_cue

    return Cues(wake=Cue(conversation_cue(), CUE_RATE), listening=Cue(listening_cue(), CUE_RATE))


def hotword_title(name: str) -> str:
    """A hotword's name as a user reads it: ``hey_eleven`` -> ``Hey Eleven``."""
    # Only a reference file's ".json" goes: a name may hold dots ("hey.computer").
    base = Path(name).name.removesuffix(".json")
    words = base.replace("_", " ").replace("-", " ").split()
    if words and words[-1].lower() == "ref":  # EfficientWord-Net's "hey_eleven_ref.json"
        words = words[:-1]
    return " ".join(w.capitalize() for w in words) or name


def listening_sentence(title: str) -> str:
    return f"Listening for “{title}”…"


# --------------------------------------------------------------------------- the loop


class HandsFreeLoop:
    """Hotword -> chime -> conversation -> chime -> hotword, until :meth:`stop`.

    ``engine()`` gives the audio engine (the launcher's, made on first use);
    ``detector(on_detect)`` builds the hotword detector; ``new_conversation()`` builds
    a conversation with the current plan (on the same engine); ``on_event`` is called
    on the loop thread with each :data:`LoopEvent`. Event loop thread only.
    """

    def __init__(
        self,
        *,
        engine: Callable[[], Awaitable[StandbyEngine]],
        detector: DetectorFactory,
        new_conversation: Callable[[], Awaitable[LoopConversation]],
        on_event: Callable[[LoopEvent], None],
        hotword: str = "Hey Eleven",
        cues: Cues | None = None,
        retry_s: float = RETRY_S,
        settle_s: float = SETTLE_S,
        first_sound_s: float = FIRST_SOUND_S,
    ) -> None:
        self._engine_provider = engine
        self._detector_factory = detector
        self._new_conversation = new_conversation
        self._on_event = on_event
        self.hotword = hotword
        self._cues = cues or Cues()
        self._retry_s = retry_s
        self._settle_s = settle_s
        self._first_sound_s = first_sound_s
        self._sound = asyncio.Event()  # the microphone delivered, after _awaiting_sound
        self._awaiting_sound = False
        self._state = LoopState.OFF
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: StandbyEngine | None = None
        self._detector: Detector | None = None
        self._remove_tap: Callable[[], None] | None = None
        self._conversation: LoopConversation | None = None
        self._ending: asyncio.Task[None] | None = None  # stop() ending a conversation
        self._heard: asyncio.Event | None = None
        self._lost = asyncio.Event()
        self._stopping: asyncio.Event | None = None
        self._heard_confidence: float | None = None
        # Read on the DSP thread: feed the detector only while this is true.
        self._feeding = False
        self._paused = False
        self._deaf_until = 0.0

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> LoopState:
        return self._state

    @property
    def conversation(self) -> LoopConversation | None:
        """The conversation running now, if any."""
        return self._conversation

    # ------------------------------------------------------------------ control

    async def run(self) -> None:
        """Run the loop until :meth:`stop`. Raises :class:`HandsFreeUnavailable` (before
        anything opens) when the detector cannot be built; nothing else ends it."""
        self._loop = asyncio.get_running_loop()
        self._heard = asyncio.Event()
        if self._stopping is None:
            self._stopping = asyncio.Event()
        if self._stopping.is_set():
            return
        self._set_state(LoopState.OPENING, "Loading the hotword detector…")
        try:
            try:
                # Loading the model takes a moment: not on the loop (the window's).
                self._detector = await asyncio.to_thread(self._detector_factory, self._on_detect)
            except HandsFreeUnavailable:
                raise
            except Exception as exc:
                logger.exception("the hotword detector could not start")
                raise HandsFreeUnavailable(
                    f"The hotword detector could not start: {_describe(exc)}"
                ) from None
            while not self._stopping.is_set():
                if await self._open():
                    await self._one_turn()
        finally:
            await self._close()

    def stop(self) -> None:
        """End the loop: a running conversation is ended, the devices are released.
        Safe from a signal handler on the loop thread; :meth:`run` returns after."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
        self._stopping.set()
        conversation = self._conversation
        if conversation is not None and self._loop is not None:
            # A conversation still connecting would otherwise keep stop() waiting for
            # the whole connect (up to its timeouts) and then be hung up.
            self._ending = self._loop.create_task(conversation.end())

    def trigger(self) -> bool:
        """Start a conversation now, as if the hotword had been heard (the window's
        Start button while listening). ``False`` unless it was listening."""
        if self._state is not LoopState.LISTENING or self._paused or self._heard is None:
            return False
        self._heard_confidence = None
        self._heard.set()
        return True

    def set_paused(self, paused: bool) -> None:
        """Paused: the detector hears nothing (Settings is recording the hotword's takes,
        which must not start a conversation); the devices stay open."""
        self._paused = paused

    async def end_conversation(self) -> None:
        """End the running conversation (the loop then listens again)."""
        conversation = self._conversation
        if conversation is not None:
            await conversation.end()

    # ------------------------------------------------------------------ steps

    async def _open(self) -> bool:
        """The engine listening and our tap on it; on failure, a sentence and a pause."""
        assert self._stopping is not None
        try:
            if self._engine is None:
                self._set_state(LoopState.OPENING, "Opening the microphone…")
                self._engine = await self._engine_provider()
                self._engine.on_listening_failure = self._listening_lost
            opened = not self._engine.is_listening
            if opened:
                if self._state is not LoopState.OPENING:
                    self._set_state(LoopState.OPENING, "Opening the microphone…")
                await self._engine.listen()
            if self._remove_tap is None:
                self._remove_tap = self._engine.add_mic_tap(self._on_mic)
            if opened:
                await self._first_sound()
            return True
        except Exception as exc:
            logger.warning("hands-free: the microphone could not open: %s", exc)
            self._emit(
                LoopProblem(
                    f"The microphone could not be opened: {_describe(exc)} "
                    f"Trying again in {self._retry_s:g} s."
                )
            )
            self._set_state(LoopState.OPENING, "Waiting for the microphone…")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_s):
                    await self._stopping.wait()
            return False

    async def _first_sound(self) -> None:
        """Until the microphone just opened delivers (up to a second through PulseAudio):
        "Listening" is said only when it is true, and a hotword said at once is heard
        whole instead of at the very start of the stream."""
        if self._first_sound_s <= 0:
            return
        self._sound.clear()
        self._awaiting_sound = True
        try:
            async with asyncio.timeout(self._first_sound_s):
                await self._sound.wait()
        except TimeoutError:
            self._emit(
                LoopProblem(
                    "The microphone delivers no sound yet; voicedesk listens anyway. Check "
                    "the microphone (voicedesk --list-devices) if the hotword is not heard."
                )
            )
        finally:
            self._awaiting_sound = False

    async def _one_turn(self) -> None:
        """Listen until the hotword (or :meth:`stop`), then one conversation."""
        assert self._heard is not None
        assert self._stopping is not None
        self._heard.clear()
        self._lost.clear()
        if self._detector is None and not await self._rebuild_detector():
            return
        if self._engine is None or not self._engine.is_listening:
            # The devices closed under us (they failed while the microphone opened, or
            # something else stopped the standby): open them again, never announce
            # "Listening" with the microphone closed.
            self._emit(LoopProblem(f"The microphone closed. Trying again in {self._retry_s:g} s."))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_s):
                    await self._stopping.wait()
            return
        self._set_state(LoopState.LISTENING, listening_sentence(self.hotword))
        self._feeding = True
        waits = [
            asyncio.ensure_future(event.wait())
            for event in (self._heard, self._stopping, self._lost)
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._feeding = False
            for wait in waits:
                wait.cancel()
        if self._stopping.is_set() or not self._heard.is_set():
            return  # stopping, or the microphone was lost: open it again
        self._emit(HotwordHeard(self.hotword, self._heard_confidence))
        self._set_state(LoopState.CONNECTING, "Starting a conversation…")
        self._cue(self._cues.wake)
        details, sentence = await self._converse()
        self._emit(ConversationOver(details, sentence))
        if self._stopping.is_set():
            return
        self._cue(self._cues.listening)
        # The chime and the last of the agent's voice must not wake the loop again.
        self._deaf_until = time.monotonic() + self._settle_s
        await self._renew_detector()

    async def _converse(self) -> tuple[DisconnectDetails | None, str]:
        """One conversation, from building it to its end; never raises."""
        assert self._stopping is not None
        try:
            conversation = await self._new_conversation()
        except Exception as exc:
            logger.exception("hands-free: the conversation could not be built")
            return None, f"The conversation could not start: {_describe(exc)}"
        if self._stopping.is_set():
            return None, "Hands-free stopped before the conversation started."
        self._conversation = conversation
        try:
            self._emit(ConversationBegins(conversation))
            if not await conversation.start():
                details = conversation.last_disconnect
                return details, _ended_sentence(details)
            self._set_state(LoopState.CONVERSING, "In a conversation")
            ended = asyncio.ensure_future(conversation.wait_disconnected())
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not ended.done():
                await conversation.end()
            details = await ended
            return details, _ended_sentence(details)
        except Exception as exc:
            logger.exception("hands-free: the conversation failed")
            with contextlib.suppress(Exception):
                await conversation.end()
            return conversation.last_disconnect, f"The conversation failed: {_describe(exc)}"
        finally:
            self._conversation = None

    async def _close(self) -> None:
        self._feeding = False
        ending, self._ending = self._ending, None
        if ending is not None:
            with contextlib.suppress(Exception):
                await ending
        remove, self._remove_tap = self._remove_tap, None
        if remove is not None:
            with contextlib.suppress(Exception):
                remove()
        detector, self._detector = self._detector, None
        if detector is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(detector.close)
        engine = self._engine
        sentence = "Hands-free is off."
        if engine is not None and engine.is_listening:
            sentence = "Stopped listening; the microphone is closed."
            try:
                await engine.stop_listening()
            except Exception:
                logger.exception("hands-free: the devices did not close cleanly")
        self._set_state(LoopState.OFF, sentence)

    def _listening_lost(self, sentence: str) -> None:
        """The engine's standby ended (the devices failed and none reopened)."""
        self._emit(LoopProblem(f"{sentence} Trying again in {self._retry_s:g} s."))
        self._lost.set()

    # ------------------------------------------------------------------ threads

    def _on_mic(self, samples: Samples) -> None:
        """The engine's tap (DSP thread): the detector hears the microphone only while
        the loop listens for the hotword."""
        if self._awaiting_sound:
            self._awaiting_sound = False
            self._post(self._sound.set)
        detector = self._detector
        if (
            self._feeding
            and not self._paused
            and detector is not None
            and time.monotonic() >= self._deaf_until
        ):
            detector.feed(samples)

    def _on_detect(self, detection: Any) -> None:
        """The detector's callback (its worker thread): over to the loop."""
        self._post(self._detected, detection)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(callback, *args)

    def _detected(self, detection: Any) -> None:
        # Heard during a conversation (the agent's own voice can sound like it) or
        # while stopping: ignored.
        if self._state is not LoopState.LISTENING or self._paused or self._heard is None:
            logger.info("hotword ignored (%s): %r", self._state.value, detection)
            return
        confidence = getattr(detection, "confidence", None)
        self._heard_confidence = float(confidence) if confidence is not None else None
        logger.info("hotword heard: %r", detection)
        self._feeding = False
        self._heard.set()

    # ------------------------------------------------------------------ helpers

    async def _rebuild_detector(self) -> bool:
        """A detector again after a failed renewal; on failure, a sentence and a pause."""
        assert self._stopping is not None
        try:
            self._detector = await asyncio.to_thread(self._detector_factory, self._on_detect)
            return True
        except Exception as exc:
            logger.exception("hands-free: the hotword detector could not start again")
            self._emit(
                LoopProblem(
                    f"The hotword detector could not start: {_describe(exc)} Trying again in "
                    f"{self._retry_s:g} s."
                )
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_s):
                    await self._stopping.wait()
            return False

    async def _renew_detector(self) -> None:
        """A fresh detector for the next hotword: the old one still holds the audio from
        before the conversation (the hotword itself) and counts its quiet time after a
        detection in audio it was fed, which stopped during the conversation; the model
        is shared, so a new one costs a thread and a buffer."""
        old, self._detector = self._detector, None
        try:
            if old is not None:
                await asyncio.to_thread(old.close)
            self._detector = await asyncio.to_thread(self._detector_factory, self._on_detect)
        except Exception as exc:
            logger.exception("hands-free: the hotword detector could not restart")
            self._emit(LoopProblem(f"The hotword detector could not restart: {_describe(exc)}"))
            self._detector = None  # built again before the loop listens

    def _cue(self, cue: Cue | None) -> None:
        if cue is None or self._engine is None:
            return
        try:
            self._engine.play_cue(cue.samples, cue.rate)
        except Exception:
            logger.exception("hands-free: a chime could not play")

    def _set_state(self, state: LoopState, sentence: str) -> None:
        if state is self._state and state is not LoopState.OPENING:
            return
        self._state = state
        logger.info("hands-free: %s (%s)", state.value, sentence)
        self._emit(StateChanged(state, sentence))

    def _emit(self, event: LoopEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            logger.exception("hands-free: a listener failed on %r", event)


def _ended_sentence(details: DisconnectDetails | None) -> str:
    if details is None:
        return "The conversation ended."
    return details.message


def _describe(exc: BaseException) -> str:
    text = SecretRedactor.redact(str(exc).strip()) or type(exc).__name__
    return text if text.endswith((".", "!", "?")) else text + "."


# --------------------------------------------------------------------------- wiring


def launcher_loop(
    launcher: Launcher,
    *,
    on_event: Callable[[LoopEvent], None],
    approver: Approver | None = None,
    tool_asker: ToolAsker | None = None,
    detector: DetectorFactory | None = None,
    hotword: str | None = None,
    cues: Cues | None = None,
) -> HandsFreeLoop:
    """The loop for a front end: the launcher's audio engine (made now, before any
    conversation), its conversations with the current plan (``approver`` asks about MCP
    tools), the plan's hotword (``plan.wake_word``, else "Hey Eleven") and the chimes.
    ``detector``/``hotword`` replace the hotword detector (tests). Raises
    :class:`HandsFreeUnavailable` (a sentence) when the plan is text only or the
    hotword cannot be found."""
    plan = launcher.plan
    if plan.options.text_only:
        raise HandsFreeUnavailable(
            "Hands-free listens with the microphone, so it cannot run text only. Turn "
            "text only off first."
        )
    if detector is None:
        detector, hotword = hotword_detector(plan.wake_word)

    async def engine() -> StandbyEngine:
        await launcher.start_demo_agent()  # on 127.0.0.1: the first hotword connects at once
        return await launcher.ensure_engine()

    async def new_conversation() -> LoopConversation:
        return await launcher.new_conversation(approver=approver, tool_asker=tool_asker)

    return HandsFreeLoop(
        engine=engine,
        detector=detector,
        new_conversation=new_conversation,
        on_event=on_event,
        hotword=hotword_title(hotword or DEFAULT_HOTWORD),
        cues=cues or default_cues(),
    )


def hotword_detector(wake_word: str | None) -> tuple[DetectorFactory, str]:
    """A factory of detectors for ``wake_word`` (a trained hotword's name or a reference
    file; ``None``: the built-in "hey eleven"), and the hotword's name. The reference is
    read now (a missing one is a :class:`HandsFreeUnavailable` sentence); the model is
    loaded when the loop builds the detector (off the event loop)."""
    from voicedesk.audio import wakeword

    try:
        reference = wakeword.load_reference(wake_word)
    except wakeword.HotwordError as exc:
        raise HandsFreeUnavailable(str(exc)) from None

    def make(on_detect: Callable[[Any], None]) -> Detector:
        try:
            return wakeword.HotwordDetector(reference, on_detect=on_detect)
        except wakeword.HotwordModelError as exc:
            raise HandsFreeUnavailable(str(exc)) from None

    return make, reference.name


# --------------------------------------------------------------------------- push-to-talk


class TalkTarget(Protocol):
    """Where push-to-talk acts: the :class:`~voicedesk.launch.Launcher` (which hands it
    to the audio engine, now or when the engine is made)."""

    @property
    def push_to_talk(self) -> bool: ...

    @property
    def talking(self) -> bool: ...

    def set_push_to_talk(self, enabled: bool) -> None: ...

    def set_talking(self, held: bool) -> None: ...


class PushToTalk:
    """The talk key: while push-to-talk is on, the microphone sends silence unless the
    key is held (the window: Space or the talk button, pressed and released) or toggled
    on (the console: a terminal sees no key-up). The audio engine keeps the last 200 ms
    flowing after it is let go, so a word's end is not cut.

    ``key`` names the key in :attr:`text`; ``hold``: the key is held (else toggled).
    ``on_change()`` is called after every change. Event loop thread only.
    """

    def __init__(
        self,
        target: TalkTarget,
        *,
        key: str,
        hold: bool = True,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._target = target
        self.key = key
        self.hold = hold
        self.on_change = on_change

    @property
    def enabled(self) -> bool:
        return self._target.push_to_talk

    @property
    def talking(self) -> bool:
        return self._target.push_to_talk and self._target.talking

    @property
    def text(self) -> str:
        """The state for the user: "Talking", "Hold Space to talk"; "" when off."""
        if not self.enabled:
            return ""
        if self.talking:
            return "Talking"
        return f"{'Hold' if self.hold else 'Press'} {self.key} to talk"

    def set_enabled(self, enabled: bool) -> None:
        if enabled != self.enabled:
            self._target.set_push_to_talk(enabled)
            self._changed()

    def press(self) -> None:
        """The key went down (or the console's toggle turned talking on)."""
        if self.enabled and not self.talking:
            self._target.set_talking(True)
            self._changed()

    def release(self) -> None:
        if self.talking:
            self._target.set_talking(False)
            self._changed()

    def toggle(self) -> None:
        if self.talking:
            self.release()
        else:
            self.press()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


# --------------------------------------------------------------------------- your own hotword

#: A hotword is built from this many takes at least (the tutorial's four samples).
MIN_TAKES = 4
MAX_TAKES = 8
#: How long one take records unless stopped sooner: the phrase and a little around it.
TAKE_S = 2.0


class TakeRecorder:
    """Records the takes of a new hotword with the microphone, plays them back, and
    builds the hotword from them (Settings' Hotword page; a view over this model).

    ``engine()`` gives the audio engine; the recorder listens on it (standby) while it
    records, plays or tests, and closes it again in :meth:`close` unless something else
    (hands-free) was listening already. :attr:`level` (0..1 RMS) follows the microphone
    while it is open, for a meter. ``on_change()`` is called on the loop thread after
    every change of state (a take recorded, recording started or stopped). Event loop
    thread only, except the tap.
    """

    def __init__(
        self,
        engine: Callable[[], Awaitable[StandbyEngine]],
        *,
        on_change: Callable[[], None] | None = None,
        takes: int = MIN_TAKES,
        take_s: float = TAKE_S,
    ) -> None:
        self._engine_provider = engine
        self.on_change = on_change
        self.takes: list[Samples | None] = [None] * max(takes, MIN_TAKES)
        self.take_s = take_s
        self.recording: int | None = None
        #: Recording was asked for and the microphone does not deliver yet (a device
        #: just opened takes up to a second): the take's clock has not started.
        self.waiting = False
        self.level = 0.0  # written by the tap (DSP thread)
        self._chunks_seen = 0  # written by the tap
        self._engine: StandbyEngine | None = None
        self._opened_here = False
        self._remove_tap: Callable[[], None] | None = None
        self._chunks: list[Samples] = []
        self._collecting = False
        self._stop_recording: asyncio.Event | None = None
        self._listeners: list[Callable[[Samples], None]] = []
        self._opening = asyncio.Lock()

    # ------------------------------------------------------------------ state

    @property
    def recorded(self) -> int:
        return sum(take is not None for take in self.takes)

    @property
    def ready(self) -> bool:
        """Enough takes to build a hotword."""
        return self.recorded >= MIN_TAKES and self.recording is None

    def take_seconds(self, index: int) -> float:
        take = self.takes[index]
        return 0.0 if take is None else take.size / TAP_RATE

    # ------------------------------------------------------------------ actions

    def add_take(self) -> bool:
        """One more take slot (up to :data:`MAX_TAKES`)."""
        if len(self.takes) >= MAX_TAKES:
            return False
        self.takes.append(None)
        self._changed()
        return True

    async def open(self) -> StandbyEngine:
        """The engine listening, the recorder's tap on it (the meter moves from now on).
        Raises what :meth:`StandbyEngine.listen` raises (a sentence)."""
        async with self._opening:
            if self._engine is None:
                self._engine = await self._engine_provider()
            if not self._engine.is_listening:
                await self._engine.listen()
                self._opened_here = True
            if self._remove_tap is None:
                self._remove_tap = self._engine.add_mic_tap(self._on_mic)
            return self._engine

    async def record(self, index: int) -> None:
        """Record take ``index`` (again, if it was recorded: a redo) for
        :attr:`take_s` or until :meth:`stop`."""
        if self.recording is not None:
            return
        self.recording = index
        self._stop_recording = asyncio.Event()
        self.waiting = True
        self._changed()
        try:
            await self.open()
            await self._audio_flowing()
            self.waiting = False
            self._chunks = []
            self._collecting = True
            self._changed()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.take_s):
                    await self._stop_recording.wait()
        finally:
            self.waiting = False
            self._collecting = False
            chunks, self._chunks = self._chunks, []
            if chunks:
                import numpy as np

                self.takes[index] = np.concatenate(chunks).astype(np.int16)
            self.recording = None
            self._changed()

    async def _audio_flowing(self, timeout_s: float = 3.0) -> None:
        """Until the microphone delivers; raises ``TimeoutError`` with a sentence."""
        seen = self._chunks_seen
        deadline = time.monotonic() + timeout_s
        while self._chunks_seen <= seen:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "The microphone delivers no sound. Check it in the Agent tab's "
                    "Microphone setting, or with voicedesk --list-devices."
                )
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        """Stop the take being recorded now (it keeps what was heard)."""
        if self._stop_recording is not None:
            self._stop_recording.set()

    def play(self, index: int) -> bool:
        """Play take ``index`` on the speaker; ``False`` when there is nothing to play."""
        take = self.takes[index]
        if take is None or self._engine is None:
            return False
        self._engine.play_cue(take, TAP_RATE)
        return True

    def add_listener(self, listener: Callable[[Samples], None]) -> Callable[[], None]:
        """Also hand the microphone's chunks to ``listener`` (DSP thread; must not
        block): the live test feeds a detector this way."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def build(self, name: str) -> Path:
        """Build the hotword ``name`` from the takes and save it where hotwords live;
        its path. Raises ``ValueError`` with a sentence (too few takes, a bad name) or
        what the detector's builder raises."""
        takes = [take for take in self.takes if take is not None]
        if len(takes) < MIN_TAKES:
            raise ValueError(f"Record at least {MIN_TAKES} takes first ({len(takes)} so far).")
        name = check_hotword_name(name)
        return await asyncio.to_thread(_build_from_takes, takes, name)

    async def close(self) -> None:
        """Stop recording, take the tap off, and close the devices if this opened them
        (after an :meth:`open` still under way, which would otherwise leave them open)."""
        self.stop()
        async with self._opening:
            remove, self._remove_tap = self._remove_tap, None
            if remove is not None:
                remove()
            engine, self._engine = self._engine, None
            if engine is not None and self._opened_here:
                self._opened_here = False
                await engine.stop_listening()
        self.level = 0.0

    # ------------------------------------------------------------------ threads

    def _on_mic(self, samples: Samples) -> None:
        self._chunks_seen += 1
        if samples.size:
            from voicedesk.audio.codec import rms

            self.level = rms(samples)
        if self._collecting:
            self._chunks.append(samples)
        for listener in tuple(self._listeners):
            listener(samples)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


class HotwordTester:
    """Scores the microphone against a hotword while the user says it (Settings' live
    test): :attr:`confidence` is the latest window's (0..1, for a meter), :attr:`heard`
    the confidence of the last detection since :meth:`start`. Listens through the
    :class:`TakeRecorder`'s tap on the audio engine. ``detector(reference_name,
    on_score, on_detect)`` builds the detector (tests replace it). ``on_change()`` is
    called on the loop thread when running starts or stops, or the hotword is heard.
    """

    def __init__(
        self,
        recorder: TakeRecorder,
        *,
        on_change: Callable[[], None] | None = None,
        detector: Callable[[str | None, Callable[[Any], None], Callable[[Any], None]], Detector]
        | None = None,
    ) -> None:
        self._recorder = recorder
        self.on_change = on_change
        self._make = detector or _scoring_detector
        self._detector: Detector | None = None
        self._remove: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.confidence = 0.0  # written by the detector's worker
        self.heard: float | None = None

    @property
    def running(self) -> bool:
        return self._detector is not None

    async def start(self, wake_word: str | None) -> None:
        """Listen for ``wake_word`` (``None``: the built-in one). Raises ``ValueError``
        with a sentence when the hotword or the model cannot be loaded."""
        await self.stop()
        self._loop = asyncio.get_running_loop()
        self.confidence = 0.0
        self.heard = None
        detector = await asyncio.to_thread(self._make, wake_word, self._on_score, self._on_detect)
        try:
            await self._recorder.open()
        except BaseException:
            await asyncio.to_thread(detector.close)
            raise
        self._detector = detector
        self._remove = self._recorder.add_listener(detector.feed)
        self._changed()

    async def stop(self) -> None:
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()
        detector, self._detector = self._detector, None
        if detector is not None:
            await asyncio.to_thread(detector.close)
            self.confidence = 0.0
            self._changed()

    def _on_score(self, score: Any) -> None:
        confidence = getattr(score, "confidence", None)
        self.confidence = float(confidence) if confidence is not None else 0.0

    def _on_detect(self, detection: Any) -> None:
        self.heard = float(getattr(detection, "confidence", 0.0))
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._changed)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def _scoring_detector(
    wake_word: str | None, on_score: Callable[[Any], None], on_detect: Callable[[Any], None]
) -> Detector:
    from voicedesk.audio import wakeword

    try:
        reference = wakeword.load_reference(wake_word)
        return wakeword.HotwordDetector(reference, on_score=on_score, on_detect=on_detect)
    except (wakeword.HotwordError, wakeword.HotwordModelError) as exc:
        raise ValueError(str(exc)) from None


class HotwordTrainingError(Exception):
    """A hotword could not be built or saved; the message says why (one line per
    recording that cannot be used)."""


def train_hotword(
    input_dir: Path,
    name: str,
    output: Path | None = None,
    *,
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """Build the hotword ``name`` from the WAV recordings in ``input_dir`` (4 or more,
    each one utterance of the phrase: the tutorial's optional step) and save it, in
    voicedesk's hotword folder unless ``output`` is given; the file's path."""
    from voicedesk.audio import wakeword

    def progress(done: int, total: int, file_name: str) -> None:
        if on_progress is not None:
            on_progress(f"[{done}/{total}] {file_name}")

    try:
        _, path = wakeword.train_hotword(
            input_dir, check_hotword_name(name), output=output, progress=progress
        )
    except (wakeword.HotwordError, wakeword.HotwordModelError, ValueError) as exc:
        raise HotwordTrainingError(str(exc)) from None
    return path


def describe_hotwords() -> list[str]:
    """``voicedesk hotword list``: the built-in hotword and the trained ones."""
    from voicedesk.audio import wakeword

    lines = [f"{wakeword.DEFAULT_NAME} (built in; the default)"]
    for name in wakeword.saved_hotwords():
        lines.append(f"{name} ({wakeword.reference_path(name)})")
    if len(lines) == 1:
        lines.append("No trained hotwords yet: voicedesk hotword train --input-dir DIR --name NAME")
    return lines


def print_scores(
    wake_word: str | None,
    *,
    input_device: str | int | None = None,
    seconds: float | None = None,
    threshold: float | None = None,
    print_line: Callable[[str], None] = print,
) -> int:
    """``voicedesk hotword test``: listen on the microphone and print every window's
    score until Ctrl+C (or ``seconds``); the exit code (1 with a sentence when the
    hotword, the model or the microphone cannot be used)."""
    from voicedesk.audio import wakeword
    from voicedesk.audio.port import AudioStartError

    try:
        reference = wakeword.load_reference(wake_word)
        detections = wakeword.listen_and_print_scores(
            reference,
            input_device=input_device,
            seconds=seconds,
            threshold=threshold,
            print_line=print_line,
        )
    except (wakeword.HotwordError, wakeword.HotwordModelError, AudioStartError) as exc:
        print_line(f"voicedesk: {exc}")
        return 1
    except ValueError as exc:  # a threshold outside 0..1
        print_line(f"voicedesk: {exc}")
        return 2
    heard = ", ".join(f"{d.confidence:.2f}" for d in detections)
    print_line(
        f"Heard {reference.name!r} {len(detections)} time(s)" + (f" ({heard})." if heard else ".")
    )
    return 0


def check_hotword_name(name: str) -> str:
    """A hotword's name as it is saved: spaces become ``_`` (the name is a file name,
    and ``--wake-word hey_computer`` needs no quotes). Raises ``ValueError`` with a
    sentence for an empty name."""
    text = "_".join(name.split())
    if not text:
        raise ValueError("Give the hotword a name, such as hey_computer.")
    return text


def write_wav(path: Path, samples: Samples, rate: int = TAP_RATE) -> None:
    """16-bit mono PCM."""
    import wave

    import numpy as np

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())


def _build_from_takes(takes: list[Samples], name: str) -> Path:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="voicedesk-takes-") as folder:
        for i, take in enumerate(takes, 1):
            write_wav(Path(folder) / f"take{i}.wav", take)
        try:
            return train_hotword(Path(folder), name)
        except HotwordTrainingError as exc:
            # The recorder's takes are named take1.wav…: say "take 1".
            raise ValueError(str(exc).replace(".wav", "").replace("take", "take ")) from None


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class ConnectTimes:
    """What :func:`time_to_connected` measured."""

    ms: list[float]  # end of the phrase that was heard -> "connected", one per trial
    misses: int  # phrases said and not heard (each trial says it until it is heard)


async def time_to_connected(
    speak: Callable[[], Awaitable[float]],
    *,
    trials: int = 5,
    wake_word: str | None = None,
    heard_within_s: float = 3.0,
    tries: int = 4,
    timeout_s: float = 20.0,
    pause_s: float = 1.5,
    tools: Callable[[], Any] | None = None,
) -> ConnectTimes:
    """End of the spoken hotword -> "connected", in ms, once per trial, through the real
    loop (detector, audio engine, chime) with the local demo agent.

    ``speak()`` says the hotword into the microphone (``bench/wakeword.py`` plays
    espeak-ng into the null sink) and returns ``time.monotonic()`` when its last sample
    was played. Each trial waits until the loop listens, speaks, times the
    conversation's ``Connected``, ends the conversation. It speaks ``pause_s`` after the
    loop says it listens, as a person would: a microphone just opened takes up to a
    second to deliver sound, and the loop is deaf for :data:`SETTLE_S` after its chime.
    A phrase not heard within ``heard_within_s`` is a miss and is said again, as a
    person repeats it; ``tries`` misses in a row raise ``TimeoutError``."""
    import argparse

    from voicedesk.config import Settings
    from voicedesk.launch import Launcher, resolve
    from voicedesk.protocol.machine import Connected
    from voicedesk.tools import ToolRegistry

    plan = resolve(argparse.Namespace(demo=True, wake_word=wake_word or ""), Settings(), {})
    launcher = Launcher(plan, tools or ToolRegistry)
    listening = asyncio.Event()
    heard = asyncio.Event()
    connected_at: list[float] = []

    def on_event(event: LoopEvent) -> None:
        match event:
            case StateChanged(state=LoopState.LISTENING):
                listening.set()
            case HotwordHeard():
                heard.set()
            case ConversationBegins(conversation=conversation):
                conversation.add_listener(
                    lambda e: (
                        connected_at.append(time.monotonic()) if isinstance(e, Connected) else None
                    )
                )
            case _:
                pass

    async def until(done: Callable[[], bool], within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while not done():
            if runner.done():
                runner.result()  # the loop failed: its exception, not a timeout
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    loop = launcher_loop(launcher, on_event=on_event)
    runner = asyncio.ensure_future(loop.run())
    results: list[float] = []
    misses = 0
    try:
        for _ in range(trials):
            async with asyncio.timeout(timeout_s):
                await listening.wait()
            listening.clear()
            await asyncio.sleep(pause_s)
            heard.clear()
            connected_at.clear()
            for _ in range(tries):
                spoken_end = await speak()
                if await until(heard.is_set, heard_within_s):
                    break
                misses += 1
            else:
                raise TimeoutError(f"the hotword was said {tries} times and not heard")
            if not await until(lambda: bool(connected_at), timeout_s):
                raise TimeoutError(f"heard, but not connected within {timeout_s:g} s")
            results.append((connected_at[-1] - spoken_end) * 1000)
            await loop.end_conversation()
    finally:
        loop.stop()
        with contextlib.suppress(Exception):
            await runner
        await launcher.close()
    return ConnectTimes(results, misses)
