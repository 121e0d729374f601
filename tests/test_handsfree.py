"""The hands-free loop's states with stand-ins for the engine, the detector and the
conversation (the real parts: tests/console/test_handsfree_console.py and the window's
tests), and push-to-talk's model."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.conftest import scaled
from voicedesk.handsfree import (
    ConversationBegins,
    ConversationOver,
    Cue,
    Cues,
    HandsFreeLoop,
    HandsFreeUnavailable,
    HotwordHeard,
    LoopEvent,
    LoopProblem,
    LoopState,
    PushToTalk,
    StateChanged,
    hotword_title,
)
from voicedesk.protocol.errors import DisconnectDetails, DisconnectReason

Samples = npt.NDArray[np.int16]
WAKE = Cue(np.full(10, 1, dtype=np.int16), 16000)
BACK = Cue(np.full(10, 2, dtype=np.int16), 16000)


class FakeEngine:
    def __init__(self, failures: int = 0) -> None:
        self.is_listening = False
        self.listen_calls = 0
        self.stop_listening_calls = 0
        self.failures = failures
        self.taps: list[Callable[[Samples], None]] = []
        self.cues: list[int] = []
        self.on_listening_failure: Callable[[str], None] | None = None

    async def listen(self) -> None:
        self.listen_calls += 1
        if self.failures:
            self.failures -= 1
            raise OSError("the device is busy")
        self.is_listening = True

    async def stop_listening(self) -> None:
        self.stop_listening_calls += 1
        self.is_listening = False

    def add_mic_tap(self, tap: Callable[[Samples], None]) -> Callable[[], None]:
        self.taps.append(tap)
        return lambda: self.taps.remove(tap)

    def play_cue(self, samples: Samples, rate: int) -> None:
        self.cues.append(int(samples[0]))

    def speak(self) -> None:
        """A microphone chunk, from another thread as the DSP thread would."""
        chunk = np.ones(320, dtype=np.int16)
        thread = threading.Thread(target=lambda: [tap(chunk) for tap in list(self.taps)])
        thread.start()
        thread.join()


@dataclass
class Heard:
    name: str
    confidence: float


class FakeDetector:
    def __init__(self, on_detect: Callable[[Any], None]) -> None:
        self.on_detect = on_detect
        self.fed = 0
        self.closed = False

    def feed(self, samples: Samples) -> None:
        self.fed += 1

    def close(self) -> None:
        self.closed = True

    def fire(self, confidence: float = 0.9) -> None:
        """The hotword, reported from the detector's own thread."""
        thread = threading.Thread(target=self.on_detect, args=(Heard("hey_eleven", confidence),))
        thread.start()
        thread.join()


class FakeConversation:
    def __init__(self, *, starts: bool = True, start_error: Exception | None = None) -> None:
        self.starts = starts
        self.start_error = start_error
        self.ended = asyncio.Event()
        self.last_disconnect: DisconnectDetails | None = None
        self.end_calls = 0

    async def start(self) -> bool:
        if self.start_error is not None:
            raise self.start_error
        if not self.starts:
            self.finish(DisconnectReason.ERROR, "The agent service refused the connection.")
        return self.starts

    async def end(self) -> None:
        self.end_calls += 1
        self.finish(DisconnectReason.USER, "You ended the conversation.")

    def finish(self, reason: DisconnectReason, message: str) -> None:
        if self.last_disconnect is None:
            self.last_disconnect = DisconnectDetails(reason, message)
        self.ended.set()

    async def wait_disconnected(self) -> DisconnectDetails | None:
        await self.ended.wait()
        return self.last_disconnect


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(scaled(timeout)):
        while True:
            if check():
                return
            await asyncio.sleep(0.005)


class Harness:
    def __init__(self, *, engine: FakeEngine | None = None) -> None:
        self.engine = engine or FakeEngine()
        self.detector: FakeDetector | None = None
        self.detectors: list[FakeDetector] = []
        self.events: list[LoopEvent] = []
        self.conversations: list[FakeConversation] = []
        self.next_conversations: list[FakeConversation | Exception] = []
        self.loop = HandsFreeLoop(
            engine=self._engine,
            detector=self._detector,
            new_conversation=self._conversation,
            on_event=self.events.append,
            hotword="Hey Eleven",
            cues=Cues(wake=WAKE, listening=BACK),
            retry_s=0.05,
            settle_s=0.0,
            first_sound_s=0.0,
        )
        self.task: asyncio.Task[None] | None = None

    async def _engine(self) -> FakeEngine:
        return self.engine

    def _detector(self, on_detect: Callable[[Any], None]) -> FakeDetector:
        self.detector = FakeDetector(on_detect)
        self.detectors.append(self.detector)
        return self.detector

    async def _conversation(self) -> FakeConversation:
        if self.next_conversations:
            made = self.next_conversations.pop(0)
            if isinstance(made, Exception):
                raise made
        else:
            made = FakeConversation()
        self.conversations.append(made)
        return made

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.loop.run())

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(scaled(timeout)):
            while not check():
                if self.task is not None and self.task.done():
                    self.task.result()
                    raise AssertionError(f"the loop ended while waiting for {what}")
                await asyncio.sleep(0.005)

    async def listening(self, times: int = 1) -> None:
        await self.until(lambda: self.states().count(LoopState.LISTENING) >= times, "listening")

    async def conversing(self, count: int) -> None:
        await self.until(
            lambda: len(self.conversations) >= count and self.loop.state is LoopState.CONVERSING,
            f"conversation {count}",
        )

    def states(self) -> list[LoopState]:
        return [e.state for e in self.events if isinstance(e, StateChanged)]

    def sentences(self) -> list[str]:
        return [
            e.sentence
            for e in self.events
            if isinstance(e, StateChanged | ConversationOver | LoopProblem)
        ]

    async def stop(self) -> None:
        self.loop.stop()
        assert self.task is not None
        async with asyncio.timeout(scaled(5)):
            await self.task


async def test_hotword_chime_conversation_chime_and_listening_again_twice() -> None:
    h = Harness()
    h.start()
    await h.listening()
    assert h.sentences()[-1] == "Listening for “Hey Eleven”…"
    # While listening nothing is built, so nothing is sent anywhere.
    h.engine.speak()
    assert h.conversations == []
    assert h.detector is not None
    assert h.detector.fed == 1

    h.detector.fire(0.87)
    await h.conversing(1)
    assert h.engine.cues == [WAKE.samples[0]]
    heard = [e for e in h.events if isinstance(e, HotwordHeard)]
    assert heard == [HotwordHeard("Hey Eleven", 0.87)]
    begun = [e for e in h.events if isinstance(e, ConversationBegins)]
    assert [e.conversation for e in begun] == h.conversations
    # The agent ends the call: a chime, and listening again on the same open devices.
    h.conversations[0].finish(DisconnectReason.AGENT, "The agent ended the conversation.")
    await h.listening(2)
    assert h.engine.cues == [WAKE.samples[0], BACK.samples[0]]
    # A fresh detector: the old one held the audio from before the conversation.
    assert len(h.detectors) == 2
    assert h.detectors[0].closed

    h.detector.fire()
    await h.conversing(2)
    await h.loop.end_conversation()
    await h.listening(3)
    assert h.engine.listen_calls == 1, "the devices stayed open across the loop"
    assert h.states() == [
        LoopState.OPENING,  # loading the detector
        LoopState.OPENING,  # opening the microphone
        LoopState.LISTENING,
        LoopState.CONNECTING,
        LoopState.CONVERSING,
        LoopState.LISTENING,
        LoopState.CONNECTING,
        LoopState.CONVERSING,
        LoopState.LISTENING,
    ]
    ends = [e.sentence for e in h.events if isinstance(e, ConversationOver)]
    assert ends == ["The agent ended the conversation.", "You ended the conversation."]
    await h.stop()


async def test_the_hotword_during_a_conversation_is_ignored_and_not_even_fed() -> None:
    h = Harness()
    h.start()
    await h.listening()
    assert h.detector is not None
    h.detector.fire()
    await h.conversing(1)
    fed = h.detector.fed
    h.engine.speak()  # the agent's voice through the microphone
    h.detector.fire()  # and a detection that was already on its way
    await asyncio.sleep(0.05)
    assert h.detector.fed == fed
    assert len(h.conversations) == 1
    assert h.loop.state is LoopState.CONVERSING
    await h.stop()


@pytest.mark.parametrize(
    ("made", "sentence"),
    [
        (RuntimeError("no agent id"), "The conversation could not start: no agent id."),
        (FakeConversation(starts=False), "The agent service refused the connection."),
        (
            FakeConversation(start_error=OSError("network is unreachable")),
            "The conversation failed: network is unreachable.",
        ),
    ],
)
async def test_an_error_is_a_sentence_and_the_loop_listens_again(
    made: Exception | FakeConversation, sentence: str
) -> None:
    h = Harness()
    h.next_conversations.append(made)
    h.start()
    await h.listening()
    assert h.detector is not None
    h.detector.fire()
    await h.listening(2)
    assert [e.sentence for e in h.events if isinstance(e, ConversationOver)] == [sentence]
    # ... and the next hotword works.
    h.detector.fire()
    await h.conversing(len(h.conversations) + (0 if isinstance(made, Exception) else 1))
    await h.stop()


async def test_a_microphone_that_will_not_open_is_tried_again() -> None:
    h = Harness(engine=FakeEngine(failures=2))
    h.start()
    await h.listening()
    problems = [e.sentence for e in h.events if isinstance(e, LoopProblem)]
    assert len(problems) == 2
    assert problems[0].startswith("The microphone could not be opened: the device is busy.")
    assert "Trying again" in problems[0]
    assert h.engine.listen_calls == 3
    await h.stop()


async def test_a_microphone_lost_while_listening_is_opened_again() -> None:
    h = Harness()
    h.start()
    await h.listening()
    assert h.engine.on_listening_failure is not None
    h.engine.is_listening = False
    h.engine.on_listening_failure(
        "The microphone stopped working and no other could be opened, so voicedesk "
        "stopped listening."
    )
    await h.listening(2)
    assert h.engine.listen_calls == 2
    problems = [e.sentence for e in h.events if isinstance(e, LoopProblem)]
    assert problems == [
        "The microphone stopped working and no other could be opened, so voicedesk stopped "
        "listening. Trying again in 0.05 s."
    ]
    await h.stop()


async def test_stopping_ends_the_conversation_and_releases_everything() -> None:
    h = Harness()
    h.start()
    await h.listening()
    assert h.detector is not None
    h.detector.fire()
    await h.conversing(1)
    await h.stop()
    assert h.conversations[0].end_calls == 1
    assert h.engine.taps == []
    assert h.detector.closed
    assert h.engine.stop_listening_calls == 1
    assert not h.engine.is_listening
    assert h.loop.state is LoopState.OFF
    assert h.engine.cues == [WAKE.samples[0]], "no back-to-listening chime when quitting"


async def test_stopping_while_listening_and_the_start_button() -> None:
    h = Harness()
    h.start()
    await h.listening()
    assert h.loop.trigger()  # the window's Start while listening: no hotword needed
    await h.conversing(1)
    assert [e for e in h.events if isinstance(e, HotwordHeard)][-1].confidence is None
    assert not h.loop.trigger()
    await h.loop.end_conversation()
    await h.listening(2)
    await h.stop()
    assert h.loop.state is LoopState.OFF
    assert h.engine.stop_listening_calls == 1


async def test_a_detector_that_cannot_load_makes_hands_free_unavailable() -> None:
    def broken(on_detect: Callable[[Any], None]) -> FakeDetector:
        raise FileNotFoundError("resnet_50_arc_qint8.onnx")

    engine = FakeEngine()

    async def get_engine() -> FakeEngine:
        return engine

    async def no_conversation() -> FakeConversation:
        raise AssertionError("never")

    loop = HandsFreeLoop(
        engine=get_engine,
        detector=broken,
        new_conversation=no_conversation,
        on_event=lambda e: None,
    )
    with pytest.raises(HandsFreeUnavailable, match=r"could not start: resnet_50_arc_qint8\.onnx"):
        await loop.run()
    assert engine.listen_calls == 0
    assert loop.state is LoopState.OFF


def test_hotword_titles() -> None:
    assert hotword_title("hey_eleven") == "Hey Eleven"
    assert hotword_title("/tmp/refs/hey_eleven_ref.json") == "Hey Eleven"
    assert hotword_title("ok-computer") == "Ok Computer"


class FakeLauncher:
    def __init__(self) -> None:
        self.push_to_talk = False
        self.talking = False

    def set_push_to_talk(self, enabled: bool) -> None:
        self.push_to_talk = enabled
        self.talking = False

    def set_talking(self, held: bool) -> None:
        self.talking = held


def test_push_to_talk_states_and_text() -> None:
    target = FakeLauncher()
    changes: list[str] = []
    talk = PushToTalk(target, key="Space", on_change=lambda: changes.append(talk.text))
    assert talk.text == ""
    talk.press()
    assert not target.talking, "holding the key does nothing while push-to-talk is off"
    talk.set_enabled(True)
    assert talk.text == "Hold Space to talk"
    talk.press()
    assert target.talking
    assert talk.text == "Talking"
    talk.press()  # auto-repeat of a held key
    talk.release()
    assert not target.talking
    talk.toggle()
    talk.toggle()
    assert changes == [
        "Hold Space to talk",
        "Talking",
        "Hold Space to talk",
        "Talking",
        "Hold Space to talk",
    ]
    console = PushToTalk(target, key="Ctrl+T", hold=False)
    assert console.text == "Press Ctrl+T to talk"


async def test_listening_is_said_once_the_microphone_delivers() -> None:
    engine = FakeEngine()
    events: list[LoopEvent] = []

    async def get_engine() -> FakeEngine:
        return engine

    loop = HandsFreeLoop(
        engine=get_engine,
        detector=FakeDetector,
        new_conversation=FakeConversation,  # type: ignore[arg-type]
        on_event=events.append,
        first_sound_s=5.0,
    )
    task = asyncio.ensure_future(loop.run())
    await until(lambda: bool(engine.taps), "the tap")
    await asyncio.sleep(0.1)
    assert loop.state is LoopState.OPENING, "not listening before the first sound"
    engine.speak()
    await until(lambda: loop.state is LoopState.LISTENING, "listening")
    loop.stop()
    await task
    assert not [e for e in events if isinstance(e, LoopProblem)]


async def test_the_loop_never_says_listening_with_the_microphone_closed() -> None:
    """The devices closed between opening and listening (the first sound never came and
    the engine gave up, or Settings closed the standby it had opened): the loop opens
    them again instead of announcing "Listening" to a closed microphone."""

    class ClosingEngine(FakeEngine):
        def add_mic_tap(self, tap: Callable[[Samples], None]) -> Callable[[], None]:
            remove = super().add_mic_tap(tap)
            if self.listen_calls == 1:
                self.is_listening = False  # closed under the loop, once
            return remove

    h = Harness(engine=ClosingEngine())
    h.start()
    await h.listening()
    assert h.engine.is_listening, "listening means the microphone is open"
    assert h.engine.listen_calls == 2
    assert "The microphone closed. Trying again in 0.05 s." in h.sentences()
    await h.stop()


async def test_stopping_while_a_conversation_connects_ends_it_at_once() -> None:
    class SlowConversation(FakeConversation):
        async def start(self) -> bool:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ended.wait(), 10)  # a connect that takes long
            return not self.ended.is_set()

    h = Harness()
    h.next_conversations.append(SlowConversation())
    h.start()
    await h.listening()
    assert h.detector is not None
    h.detector.fire()
    await h.until(lambda: h.loop.state is LoopState.CONNECTING and h.conversations, "connecting")
    started = time.monotonic()
    await h.stop()
    assert time.monotonic() - started < 1.0, "stop waited for the whole connect"
    assert h.conversations[0].end_calls >= 1
    assert not h.engine.is_listening


async def test_a_detector_that_fails_to_restart_is_built_again_before_listening() -> None:
    h = Harness()
    h.start()
    await h.listening()
    failing = [True]
    build = h._detector

    def flaky(on_detect: Callable[[Any], None]) -> FakeDetector:
        if failing and failing.pop():
            raise RuntimeError("out of memory")
        return build(on_detect)

    h.loop._detector_factory = flaky  # type: ignore[assignment]
    assert h.detector is not None
    h.detector.fire()
    await h.conversing(1)
    h.conversations[0].finish(DisconnectReason.AGENT, "The agent ended the conversation.")
    await h.listening(2)
    assert "The hotword detector could not restart: out of memory" in " ".join(h.sentences())
    # Listening again means hearing again: a working detector is fed.
    assert len(h.detectors) == 2
    assert not h.detectors[-1].closed
    h.engine.speak()
    assert h.detectors[-1].fed == 1
    h.detectors[-1].fire()
    await h.conversing(2)
    await h.stop()
