"""The conversation over WebRTC, with a room of the test's own: what the transport sends
and when, where the agent's voice goes, and how a call ends. The token comes from the
local agent over a real socket; the room is the fake (no LiveKit server here: the
namespace tests in ``tests/webrtc`` run the real SDK against a stand-in)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from tests.conftest import scaled
from tests.session.helpers import Recorder, RecordingAudioPort
from voicedesk.localagent import LocalAgentServer
from voicedesk.localagent.server import frame_observers
from voicedesk.protocol.errors import DisconnectReason
from voicedesk.protocol.events import UserTranscript
from voicedesk.protocol.machine import Connected, Disconnected, ModeChanged, Status
from voicedesk.session import Conversation, ConversationOptions, TransportNotice
from voicedesk.session.endpoints import EndpointError, livekit_url
from voicedesk.session.livekit import (
    AudibleGate,
    MediaBridge,
    Room,
    _LiveKitMedia,
    conversation_id_of,
)
from voicedesk.tools import ClientTool, ToolDefinition, ToolRegistry

RATE = 48000


def tone(ms: float, level: float = 0.3, hz: float = 440.0) -> bytes:
    t = np.arange(int(RATE * ms / 1000)) / RATE
    return (np.sin(2 * np.pi * hz * t) * level * 32767).astype("<i2").tobytes()


def silence(ms: float) -> bytes:
    return bytes(2 * int(RATE * ms / 1000))


def to_the_contract_check(direction: str, message: Any) -> None:
    """Every data packet through the fake room, both ways, goes to the contract check that
    sees the local agent's websocket frames (``tests/conftest.py``; ``direction``:
    ``"server"`` for the agent's, ``"client"`` for ours)."""
    for observe in frame_observers:
        observe(direction, message)


class FakeRoom:
    """The calls of ``livekit.rtc.Room`` the transport makes; the test plays the service."""

    def __init__(self, name: str = "RM_conv_0123abcdEF") -> None:
        self.name = name
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.url: str | None = None
        self.token: str | None = None
        self.fail_connect: BaseException | None = None
        self.disconnects = 0

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        assert callback is not None
        self.handlers[event] = callback
        return callback

    async def connect(self, url: str, token: str, options: Any = None) -> None:
        if self.fail_connect is not None:
            raise self.fail_connect
        self.url, self.token = url, token

    async def disconnect(self) -> None:
        self.disconnects += 1

    def emit(self, event: str, *args: Any) -> None:
        self.handlers[event](*args)


class Participant:
    def __init__(self, identity: str) -> None:
        self.identity = identity


class Track:
    kind = rtc.TrackKind.KIND_AUDIO


class FakeMedia:
    """The room's media: the published microphone, the agent's track, data packets."""

    def __init__(self) -> None:
        self.published = False
        self.fail_publish_data = False
        self.mic: list[bytes] = []
        self.data: list[dict[str, Any]] = []
        self.agent: asyncio.Queue[bytes] = asyncio.Queue()

    async def publish_microphone(self) -> None:
        self.published = True

    async def send(self, pcm: bytes) -> None:
        self.mic.append(pcm)

    async def agent_audio(self, track: Any) -> AsyncGenerator[bytes, None]:
        while True:
            yield await self.agent.get()

    async def publish_data(self, data: bytes) -> None:
        if self.fail_publish_data:
            raise ConnectionError("data channel closed")
        message = json.loads(data)
        to_the_contract_check("client", message)
        self.data.append(message)

    def types(self) -> list[str]:
        return [m["type"] for m in self.data]


class Call:
    """A WebRTC conversation with the fake room, a recording audio port and the local
    agent (for the token)."""

    def __init__(self, quiet_agent: LocalAgentServer, **options: Any) -> None:
        self.room = FakeRoom()
        self.media = FakeMedia()
        self.audio = RecordingAudioPort()
        tools = options.pop("tools", None)
        self.conversation = Conversation(
            ConversationOptions(
                agent_id="agent_1",
                server_url=quiet_agent.http_url,
                transport="webrtc",
                livekit_url="ws://127.0.0.1:7880",
                **options,
            ),
            audio=self.audio,
            tools=tools,
            webrtc_room=self._parts,
        )
        self.events = Recorder(self.conversation)

    def _parts(self) -> tuple[Room, Callable[[Room], MediaBridge]]:
        return self.room, lambda room: self.media

    def say(self, message: dict[str, Any]) -> None:
        """The agent sends a JSON event as a data packet."""
        to_the_contract_check("server", message)
        self.room.emit("data_received", json.dumps(message).encode())


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + scaled(timeout)
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_the_initiation_goes_first_and_the_room_names_the_conversation(
    quiet_agent: LocalAgentServer,
) -> None:
    call = Call(quiet_agent)
    assert await call.conversation.start()
    assert call.conversation.status is Status.CONNECTED
    assert call.conversation.conversation_id == "conv_0123abcdEF"
    assert call.events.of_type(Connected)[0].conversation_id == "conv_0123abcdEF"
    assert call.media.types()[0] == "conversation_initiation_client_data"
    assert call.media.published, "the microphone is a published track"
    # The token came from the agent's service, for this agent; the room got it.
    assert call.room.token in quiet_agent.tokens
    assert quiet_agent.token_queries[0]["agent_id"] == ["agent_1"]
    assert quiet_agent.token_queries[0]["source"] == ["voicedesk"]
    assert call.room.url == "ws://127.0.0.1:7880"
    # Both directions are pcm_48000.
    assert call.audio.formats is not None
    assert {f.name for f in call.audio.formats} == {"pcm_48000"}
    await call.conversation.end()


async def test_the_microphone_is_a_track_never_a_message(quiet_agent: LocalAgentServer) -> None:
    call = Call(quiet_agent)
    assert await call.conversation.start()
    assert call.audio.sink is not None
    for _ in range(5):
        call.audio.sink.on_mic_audio(tone(20))
    await until(lambda: len(call.media.mic) == 5)
    call.conversation.send_user_message("hello")
    await until(lambda: "user_message" in call.media.types())
    assert "user_audio_chunk" not in call.media.types()
    await call.conversation.end()


async def test_the_agents_voice_plays_from_its_track_and_audio_events_only_align(
    quiet_agent: LocalAgentServer,
) -> None:
    call = Call(quiet_agent)
    assert await call.conversation.start()
    call.room.emit("track_subscribed", Track(), object(), Participant("agent-xyz"))
    speech = tone(100)
    await call.media.agent.put(speech)
    for _ in range(100):  # the track runs on in silence between replies, 10 ms a frame
        await call.media.agent.put(silence(10))
    await until(lambda: call.media.agent.empty())
    await asyncio.sleep(0.05)
    played = b"".join(call.audio.played)
    assert played.startswith(speech)
    heard_ms = 1000 * (len(played) - len(speech)) / 2 / RATE
    assert 300 <= heard_ms <= 500, f"{heard_ms} ms of the silence after the reply played"
    # An audio event's payload (if any) is not played again: the track carries the voice.
    call.say({"type": "audio", "audio_event": {"audio_base_64": "AAAA", "event_id": 1}})
    call.say(
        {
            "type": "user_transcript",
            "user_transcription_event": {"user_transcript": "hi", "event_id": 2},
        }
    )
    await call.events.wait_for(UserTranscript)
    assert b"\x00\x00\x00" not in b"".join(call.audio.played)[len(played) :]
    await call.conversation.end()


async def test_a_track_of_another_participant_is_not_played(quiet_agent: LocalAgentServer) -> None:
    call = Call(quiet_agent)
    assert await call.conversation.start()
    call.room.emit("track_subscribed", Track(), object(), Participant("someone-else"))
    await call.media.agent.put(tone(100))
    await asyncio.sleep(0.1)
    assert call.audio.played == []
    await call.conversation.end()


async def test_the_agent_leaving_ends_the_call_as_ended_by_the_agent(
    quiet_agent: LocalAgentServer,
) -> None:
    call = Call(quiet_agent)
    assert await call.conversation.start()
    call.room.emit("participant_disconnected", Participant("someone-else"))
    await asyncio.sleep(0.05)
    assert call.conversation.status is Status.CONNECTED
    call.room.emit("participant_disconnected", Participant("agent-xyz"))
    details = await call.conversation.wait_disconnected()
    assert details is not None
    assert details.reason is DisconnectReason.AGENT
    assert call.room.disconnects >= 1
    assert call.audio.stopped == 1


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("ROOM_DELETED", DisconnectReason.AGENT),
        ("SIGNAL_CLOSE", DisconnectReason.ERROR),
        ("CONNECTION_TIMEOUT", DisconnectReason.ERROR),
    ],
)
async def test_the_room_closing_ends_the_call(
    quiet_agent: LocalAgentServer, reason: str, expected: DisconnectReason
) -> None:
    call = Call(quiet_agent)
    assert await call.conversation.start()
    call.room.emit("disconnected", reason)
    details = await call.conversation.wait_disconnected()
    assert details is not None
    assert details.reason is expected
    assert details.message  # a sentence, whichever
    if expected is DisconnectReason.ERROR:
        assert "lost" in details.message.lower() or "connection" in details.message.lower()


async def test_a_tool_call_round_trips_as_data(quiet_agent: LocalAgentServer) -> None:
    tools = ToolRegistry([ClientTool(ToolDefinition("get_time", "the time"), lambda p: "noon")])
    call = Call(quiet_agent, tools=tools)
    assert await call.conversation.start()
    call.say(
        {
            "type": "client_tool_call",
            "client_tool_call": {
                "tool_name": "get_time",
                "tool_call_id": "t1",
                "parameters": {},
                "event_id": 3,
            },
        }
    )
    await until(lambda: "client_tool_result" in call.media.types())
    (result,) = [m for m in call.media.data if m["type"] == "client_tool_result"]
    assert result == {
        "type": "client_tool_result",
        "tool_call_id": "t1",
        "result": "noon",
        "is_error": False,
    }
    await call.conversation.end()


async def test_mute_volume_and_the_mode_work_as_over_the_websocket(
    quiet_agent: LocalAgentServer,
) -> None:
    call = Call(quiet_agent)
    assert await call.conversation.start()
    call.conversation.set_mic_muted(True)
    call.conversation.set_volume(0.4)
    assert call.audio.muted is True
    assert call.audio.volume == 0.4
    assert call.audio.sink is not None
    call.audio.sink.on_playback_started()  # what is audible drives the mode
    await call.events.wait_for(ModeChanged, lambda e: e.mode.value == "speaking")
    call.audio.sink.on_playback_stopped()
    await call.events.wait_for(ModeChanged, lambda e: e.mode.value == "listening")
    await call.conversation.end()


async def test_a_failed_initiation_fails_the_start_with_a_sentence(
    quiet_agent: LocalAgentServer,
) -> None:
    call = Call(quiet_agent)
    call.media.fail_publish_data = True
    assert not await call.conversation.start()
    (event,) = call.events.of_type(Disconnected)
    assert "could not be started in its WebRTC room" in event.details.message
    assert call.room.disconnects >= 1
    assert call.audio.formats is None, "no devices were opened"


async def test_a_room_that_cannot_be_joined_fails_the_start_with_a_sentence(
    quiet_agent: LocalAgentServer,
) -> None:
    call = Call(quiet_agent)
    call.room.fail_connect = ConnectionError("refused")
    assert not await call.conversation.start()
    (event,) = call.events.of_type(Disconnected)
    assert "Could not join the conversation's WebRTC room" in event.details.message
    assert "--transport websocket" in event.details.message


async def test_a_private_agents_token_needs_its_key(quiet_agent: LocalAgentServer) -> None:
    quiet_agent.config.api_key = "sk_right"
    call = Call(quiet_agent)
    assert not await call.conversation.start()
    sentence = call.events.of_type(Disconnected)[0].details.message
    assert "API key" in sentence
    assert "sk_right" not in sentence
    call = Call(quiet_agent, api_key="sk_right")
    assert await call.conversation.start()
    assert call.room.token in quiet_agent.tokens
    await call.conversation.end()


async def test_text_only_over_webrtc_uses_the_websocket_and_says_so(
    quiet_agent: LocalAgentServer,
) -> None:
    call = Call(quiet_agent, text_only=True)
    assert await call.conversation.start()
    (notice,) = call.events.of_type(TransportNotice)
    assert "websocket" in notice.message
    assert call.room.token is None, "no room was joined"
    assert quiet_agent.sessions, "the conversation runs over the local agent's websocket"
    await call.conversation.end()


def test_the_livekit_server_follows_the_region_or_is_given() -> None:
    assert livekit_url("https://api.elevenlabs.io") == "wss://livekit.rtc.elevenlabs.io"
    assert livekit_url("eu") == "wss://livekit.rtc.eu.residency.elevenlabs.io"
    assert livekit_url("in") == "wss://livekit.rtc.in.residency.elevenlabs.io"
    with pytest.raises(EndpointError, match="--livekit-url"):
        livekit_url("sg")
    assert livekit_url("eu", "wss://lk.example.com") == "wss://lk.example.com"
    assert livekit_url("eu", "ws://127.0.0.1:7880") == "ws://127.0.0.1:7880"
    assert livekit_url("eu", "ws://10.9.0.1:7880", lambda: {"10.9.0.1"}) == "ws://10.9.0.1:7880"
    with pytest.raises(EndpointError, match="not encrypted"):
        livekit_url("eu", "ws://lk.example.com", lambda: {"10.9.0.1"})
    with pytest.raises(EndpointError, match="not valid"):
        livekit_url("eu", "https://lk.example.com")


def test_the_conversation_id_is_found_in_the_room_name() -> None:
    assert conversation_id_of("RM_conv_9f8e7d") == "conv_9f8e7d"
    assert conversation_id_of("conv_abc") == "conv_abc"
    assert conversation_id_of("room-42") == "room-42"


def test_the_gate_plays_a_reply_with_its_pauses_and_drops_the_silence_after() -> None:
    gate = AudibleGate(RATE, hangover_ms=200)
    assert gate(silence(10)) is None, "silence before any speech"
    assert gate(tone(10)) is not None
    pause = [gate(silence(10)) for _ in range(30)]
    assert all(p is not None for p in pause[:20]), "a pause inside a reply plays"
    assert all(p is None for p in pause[21:]), "silence after the hangover does not"
    assert gate(tone(10, level=0.005)) is None, "a whisper of noise is not speech"
    assert gate(tone(10)) is not None
    # Interrupted: the rest of the reply on its way is dropped, until the track has been
    # quiet for a moment; then the next reply plays.
    gate.interrupt()
    assert gate(tone(10)) is None
    assert [gate(silence(10)) for _ in range(13)] == [None] * 13
    assert gate(tone(10)) is not None


async def test_the_local_agent_without_a_livekit_server_uses_the_websocket(
    quiet_agent: LocalAgentServer,
) -> None:
    audio = RecordingAudioPort()
    conversation = Conversation(
        ConversationOptions(agent_id="demo", server_url=quiet_agent.http_url, transport="webrtc"),
        audio=audio,
    )
    events = Recorder(conversation)
    assert await conversation.start()
    (notice,) = events.of_type(TransportNotice)
    assert "the local agent (it has no LiveKit server) uses the websocket" in notice.message
    assert quiet_agent.sessions
    assert not quiet_agent.token_queries
    assert audio.formats is not None, "voice runs, over the websocket"
    await conversation.end()


async def test_the_microphone_reaches_the_sdk_in_10_ms_frames_whatever_the_chunk() -> None:
    """The SDK's direct capture (no queue: no added latency) takes 10 ms frames only; a
    chunk of another length is cut into them and its remainder goes with the next one,
    so no microphone audio is lost or refused."""
    media = _LiveKitMedia(object())
    frames: list[bytes] = []
    capture = media._source.capture_frame

    async def counted(frame: rtc.AudioFrame) -> None:
        await capture(frame)  # the real source: refuses anything but 10 ms
        frames.append(bytes(frame.data.cast("B")))

    media._source.capture_frame = counted  # type: ignore[method-assign]
    speech = tone(100)
    for start in range(0, len(speech), 2 * 1200):  # 25 ms chunks
        await media.send(speech[start : start + 2 * 1200])
    assert [len(f) for f in frames] == [2 * 480] * 10
    assert b"".join(frames) == speech
    await media._source.aclose()
