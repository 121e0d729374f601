"""Test helpers for sessions against the local agent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from tests.conftest import scaled
from voicedesk.audio.port import AudioStartError
from voicedesk.protocol.formats import AudioFormat
from voicedesk.protocol.machine import Disconnected
from voicedesk.session import AudioSink, Conversation, ConversationOptions, SessionEvent
from voicedesk.tools import ToolRegistry

E = TypeVar("E")


class Recorder:
    """Collects a conversation's events; can wait for one."""

    def __init__(self, conversation: Conversation) -> None:
        self.events: list[SessionEvent] = []
        self._changed = asyncio.Event()
        conversation.add_listener(self._on_event)

    def _on_event(self, event: SessionEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def of_type(self, cls: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, cls)]

    async def wait_for(
        self, cls: type[E], predicate: Callable[[E], bool] = lambda e: True, timeout: float = 5.0
    ) -> E:
        async with asyncio.timeout(scaled(timeout)):
            while True:
                for event in self.events:
                    if isinstance(event, cls) and predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    def disconnect(self) -> Disconnected:
        (event,) = self.of_type(Disconnected)
        return event


def options(server_url: str, **kwargs: Any) -> ConversationOptions:
    kwargs.setdefault("agent_id", "demo")
    kwargs.setdefault("text_only", True)
    kwargs.setdefault("metadata_timeout_s", scaled(5))
    return ConversationOptions(server_url=server_url, **kwargs)


def make(
    server_url: str, tools: ToolRegistry | None = None, audio: Any = None, **kwargs: Any
) -> tuple[Conversation, Recorder]:
    conversation = Conversation(options(server_url, **kwargs), tools=tools, audio=audio)
    return conversation, Recorder(conversation)


class RecordingAudioPort:
    """Stands in for the audio engine at the session's audio hooks: records what it is told."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.fail_with = fail_with
        self.formats: tuple[AudioFormat, AudioFormat] | None = None
        self.sink: AudioSink | None = None
        self.played: list[bytes] = []
        self.interruptions = 0
        self.muted: bool | None = None
        self.volume: float | None = None
        self.stopped = 0

    async def start(
        self, *, input_format: AudioFormat, output_format: AudioFormat, sink: AudioSink
    ) -> None:
        if self.fail_with:
            raise AudioStartError(self.fail_with)
        self.formats = (input_format, output_format)
        self.sink = sink

    def play(self, audio: bytes) -> None:
        self.played.append(audio)

    def interrupt(self) -> None:
        self.interruptions += 1

    def set_muted(self, muted: bool) -> None:
        self.muted = muted

    def set_volume(self, volume: float) -> None:
        self.volume = volume

    async def stop(self) -> None:
        self.stopped += 1


class LoopTicks:
    """Counts 10 ms ticks of the event loop while in use: a loop that something blocked
    ticks far less than its wall time allows."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Future[None] | None = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.count += 1

    async def __aenter__(self) -> LoopTicks:
        self._task = asyncio.ensure_future(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
