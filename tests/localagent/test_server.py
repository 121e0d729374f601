"""The local agent, driven by a bare websocket client (not our session): it must follow
the protocol reference on its own."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import scaled
from voicedesk.audio import codec
from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind, brain
from voicedesk.localagent import voice as voice_module
from voicedesk.localagent.brain import ToolKind, ToolRequest, plan_reply, reply_to_tool_result
from voicedesk.localagent.server import ALWAYS_SENT, DEFAULT_EVENTS, FILES_NOT_SUPPORTED
from voicedesk.protocol import catalog
from voicedesk.protocol.formats import ALL_FORMATS, parse_audio_format

INIT = {"type": "conversation_initiation_client_data", "dynamic_variables": {"platform": "linux"}}
TEXT_ONLY_INIT = {**INIT, "conversation_config_override": {"conversation": {"text_only": True}}}
#: Events a real agent sends only when asked (``client_events``).
OPT_IN = (
    "vad_score",
    "agent_chat_response_part",
    "agent_tool_request",
    "agent_tool_response",
    "agent_tool_response_full_payload",
    "mcp_connection_status",
)
PCM16 = parse_audio_format("pcm_16000")
LOUD = codec.encode(voice_module.sine(50, 16000, hz=300, level=0.5), PCM16)  # 50 ms of voice
QUIET = bytes(len(LOUD))  # 50 ms of silence


def init_with(*, text_only: bool = True, events: tuple[str, ...] | None = None) -> dict[str, Any]:
    """An initiation; ``events``: ``client_events`` asked for on top of the defaults."""
    conversation: dict[str, Any] = {"text_only": text_only}
    if events is not None:
        conversation["client_events"] = [*catalog.DEFAULT_CLIENT_EVENTS, *events]
    return {**INIT, "conversation_config_override": {"conversation": conversation}}


def audio_frame(chunk: bytes) -> str:
    return json.dumps({"user_audio_chunk": base64.b64encode(chunk).decode()})


async def speak(ws: ClientConnection, loud: int, quiet: int = 0) -> None:
    """Send ``loud`` 50 ms chunks of voice, then ``quiet`` chunks of silence."""
    for chunk in [LOUD] * loud + [QUIET] * quiet:
        await ws.send(audio_frame(chunk))


def types_of(messages: list[dict[str, Any]]) -> set[str]:
    return {str(m.get("type")) for m in messages}


@asynccontextmanager
async def running(**config: Any) -> AsyncIterator[LocalAgentServer]:
    config.setdefault("ping_interval_s", None)
    server = LocalAgentServer(AgentConfig(**config))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), scaled(timeout)))  # type: ignore[no-any-return]


async def recv_until(
    ws: ClientConnection, msg_type: str, timeout: float = 5.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first message of ``msg_type``, and everything received before it."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(scaled(timeout)):
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") == msg_type:
                return msg, seen
            seen.append(msg)


async def open_conversation(
    server: LocalAgentServer, init: dict[str, Any] = INIT
) -> ClientConnection:
    ws = await websockets.connect(server.ws_url())
    await ws.send(json.dumps(init))
    return ws


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await recv_until(ws, "never", timeout)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def ask(ws: ClientConnection, text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Type ``text``; the agent's answer and everything that came before it."""
    await ws.send(json.dumps({"type": "user_message", "text": text}))
    return await recv_until(ws, "agent_response")


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


# ------------------------------------------------------------------ REST


async def test_signed_url_endpoint_checks_the_key() -> None:
    async with running(api_key="sk_right_key_000") as server:
        url = f"{server.http_url}/v1/convai/conversation/get-signed-url?agent_id=agent_1"
        status, body = await asyncio.to_thread(http_get, url, {"xi-api-key": "sk_wrong"})
        assert status == 401
        assert body["detail"]["status"] == "invalid_api_key"
        status, body = await asyncio.to_thread(http_get, url)
        assert status == 401
        status, body = await asyncio.to_thread(http_get, url, {"xi-api-key": "sk_right_key_000"})
        assert status == 200
        assert body["signed_url"].startswith(
            f"ws://127.0.0.1:{server.port}/v1/convai/conversation?agent_id=agent_1&conversation_signature="
        )
        missing = f"{server.http_url}/v1/convai/conversation/get-signed-url"
        status, _ = await asyncio.to_thread(http_get, missing, {"xi-api-key": "sk_right_key_000"})
        assert status == 422
        status, _ = await asyncio.to_thread(http_get, f"{server.http_url}/nowhere")
        assert status == 404

        # The signed URL opens the private agent; a URL without signature does not.
        ws = await websockets.connect(body["signed_url"])
        await ws.send(json.dumps(INIT))
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
        await ws.close()
        ws = await websockets.connect(server.ws_url("agent_1"))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_without_a_configured_key_any_key_gets_a_signed_url() -> None:
    async with running() as server:
        url = f"{server.http_url}/v1/convai/conversation/get-signed-url?agent_id=a"
        status, body = await asyncio.to_thread(http_get, url, {"xi-api-key": "anything"})
        assert status == 200
        assert "signed_url" in body


async def test_websocket_without_agent_id_is_rejected() -> None:
    async with running() as server:
        with pytest.raises(websockets.InvalidStatus) as rejected:
            await websockets.connect(f"ws://127.0.0.1:{server.port}/v1/convai/conversation")
        assert rejected.value.response.status_code == 422


# ------------------------------------------------------------------ conversation


async def test_metadata_first_then_greeting_with_platform_filled_text_only() -> None:
    async with running() as server:
        ws = await open_conversation(
            server, {**TEXT_ONLY_INIT, "dynamic_variables": {"platform": "macos"}}
        )
        metadata = await recv_json(ws)
        assert metadata["type"] == "conversation_initiation_metadata"
        event = metadata["conversation_initiation_metadata_event"]
        assert event["conversation_id"].startswith("conv_local_")
        assert (event["agent_output_audio_format"], event["user_input_audio_format"]) == (
            "pcm_16000",
            "pcm_16000",
        )
        response, before = await recv_until(ws, "agent_response")
        assert response["agent_response_event"]["agent_response"] == (
            "Hi there, woah, so cool that I'm running on macos. What can I help you with?"
        )
        # By default the final text only: no streamed parts, no audio in text-only.
        assert before == []
        _, between = await ask(ws, "hi")
        assert between == []
        await ws.close()


async def test_text_parts_stream_when_client_events_ask_for_them() -> None:
    async with running() as server:
        ws = await open_conversation(server, init_with(events=("agent_chat_response_part",)))
        await recv_json(ws)  # metadata
        response, before = await recv_until(ws, "agent_response")
        event_id = response["agent_response_event"]["event_id"]
        parts = [m["text_response_part"] for m in before]
        assert [p["type"] for p in parts[:1] + parts[-1:]] == ["start", "stop"]
        assert {p["event_id"] for p in parts} == {event_id}
        assert (
            "".join(p["text"] for p in parts) == response["agent_response_event"]["agent_response"]
        )
        assert "agent_chat_response_part" in server.sessions[0].client_events
        await ws.close()


@pytest.mark.parametrize("fmt", [f.name for f in ALL_FORMATS])
async def test_audio_in_every_negotiated_format_has_the_right_pitch(fmt: str) -> None:
    async with running(agent_output_audio_format=fmt, voice=VoiceKind.SINE) as server:
        ws = await open_conversation(server)
        metadata = await recv_json(ws)
        assert (
            metadata["conversation_initiation_metadata_event"]["agent_output_audio_format"] == fmt
        )
        first = await recv_json(ws)
        assert first["type"] == "agent_response"
        event_id = first["agent_response_event"]["event_id"]
        audio = bytearray()
        started = time.monotonic()
        output = parse_audio_format(fmt)
        session = server.sessions[0]
        while True:
            msg = await recv_json(ws)
            if msg["type"] == "audio":
                assert msg["audio_event"]["event_id"] == event_id
                audio.extend(base64.b64decode(msg["audio_event"]["audio_base_64"]))
            if not session.is_speaking or output.duration_ms(len(audio)) >= 1000:
                break
        elapsed = time.monotonic() - started
        samples = codec.decode(bytes(audio), output)
        spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
        peak_hz = np.argmax(spectrum) * output.sample_rate / samples.size
        assert abs(peak_hz - 1000) < 15, peak_hz
        # Faster than real time, as the service sends.
        assert elapsed < output.duration_ms(len(audio)) / 1000
        await ws.close()


async def test_espeak_or_tones_speak_the_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = await voice_module.synthesize("Hello there, how are you?", 16000, VoiceKind.AUTO)
    assert samples.size > 16000 * 0.5
    assert codec.rms(samples) > 0.01
    monkeypatch.setattr(voice_module, "espeak_available", lambda: False)
    tones = await voice_module.synthesize("one two three", 16000, VoiceKind.AUTO)
    assert tones.size == 3 * int(16000 * 0.18)  # one 180 ms beep+gap per word


@pytest.mark.skipif(not voice_module.espeak_available(), reason="espeak-ng not installed")
async def test_espeak_output_is_resampled_to_the_format() -> None:
    at_8k = await voice_module.synthesize("testing", 8000, VoiceKind.ESPEAK)
    at_48k = await voice_module.synthesize("testing", 48000, VoiceKind.ESPEAK)
    assert abs(at_48k.size / at_8k.size - 6) < 0.01


async def test_an_interrupted_synthesis_is_reaped_whatever_it_already_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn cut off while the synthesiser still writes must not hang the call.

    The stand-in ``espeak-ng`` leaves a child that writes 400 kB after the kill, more
    than asyncio buffers before it stops reading the pipe: unless the output is read to
    its end, the pipe never closes and the killed process is never reaped."""
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\n( sleep 0.3; head -c 400000 /dev/zero ) &\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    speaking = asyncio.ensure_future(
        voice_module.synthesize("a long reply", 16000, VoiceKind.ESPEAK)
    )
    await asyncio.sleep(0.1)
    speaking.cancel()
    started = time.monotonic()
    done, _ = await asyncio.wait({speaking}, timeout=scaled(5))
    assert speaking in done, "the interrupted synthesiser was never reaped"
    assert speaking.cancelled()
    assert time.monotonic() - started < scaled(2)


async def test_user_speech_interrupts_the_agent_and_gets_a_turn() -> None:
    async with running(voice=VoiceKind.SINE, send_speedup=1.0, end_of_turn_ms=300) as server:
        ws = await open_conversation(server)
        await recv_json(ws)  # metadata
        first = await recv_json(ws)
        speaking_id = first["agent_response_event"]["event_id"]
        await speak(ws, loud=4)
        interruption, seen = await recv_until(ws, "interruption")
        interrupted_at = interruption["interruption_event"]["event_id"]
        assert interrupted_at > speaking_id
        await speak(ws, loud=0, quiet=8)
        transcript, more = await recv_until(ws, "user_transcript")
        assert "s of speech" in transcript["user_transcription_event"]["user_transcript"]
        # The utterance's id: its interruption, its transcript and the reply share it.
        assert transcript["user_transcription_event"]["event_id"] == interrupted_at
        reply, before = await recv_until(ws, "agent_response")
        assert "without speech recognition" in reply["agent_response_event"]["agent_response"]
        assert reply["agent_response_event"]["event_id"] == interrupted_at
        # Only the default events: no vad_score unless asked for.
        everything = [*seen, *more, *before]
        assert types_of(everything) <= set(DEFAULT_EVENTS) | ALWAYS_SENT
        assert "agent_response_correction" in types_of(more)
        await ws.close()


async def test_the_apps_demo_agent_keeps_no_record_of_the_users_audio() -> None:
    """The recording for tests would grow ~32 kB a second of a call (10 minutes: 19 MB);
    unrecorded, the agent still hears the user (a turn) and keeps nothing of the audio."""
    async with running(voice=VoiceKind.SINE, end_of_turn_ms=300, record=False) as server:
        ws = await open_conversation(server)
        await recv_json(ws)  # metadata
        await speak(ws, loud=4, quiet=8)
        transcript, _ = await recv_until(ws, "user_transcript")
        assert "s of speech" in transcript["user_transcription_event"]["user_transcript"]
        await recv_until(ws, "audio")
        session = server.sessions[0]
        assert session.audio_chunks == 12
        assert len(session.audio_in) == 0
        assert session.audio_arrivals == []
        assert session.sent_audio_event_ids == []
        await ws.close()


async def test_a_long_unrecorded_call_keeps_only_the_latest_messages_and_pongs() -> None:
    """A call of hours (user activity every few seconds, a ping each 2 s) must not grow the
    demo agent: without a record it keeps the latest 200 messages and 50 pongs."""
    async with running(speak_first_message=False, ping_interval_s=0.01, record=False) as server:
        ws = await open_conversation(server)
        await recv_json(ws)  # metadata
        for n in range(300):
            await ws.send(json.dumps({"type": "user_activity"}))
            if n % 3 == 0:
                ping = await recv_until(ws, "ping")
                event_id = ping[0]["ping_event"]["event_id"]
                await ws.send(json.dumps({"type": "pong", "event_id": event_id}))
        session = server.sessions[0]
        await session.wait_for(lambda s: s.user_activity_count == 300)
        assert len(session.received) == 200
        assert session.received[-1]["type"] == "user_activity"
        assert 0 < len(session.pongs) <= 50
        assert max(session.pongs) > 50  # the latest ones are the ones kept
        await ws.close()


async def test_vad_scores_come_when_client_events_ask_for_them() -> None:
    async with running(speak_first_message=False, vad_interval_ms=100) as server:
        ws = await open_conversation(server, init_with(text_only=False, events=("vad_score",)))
        await recv_json(ws)  # metadata
        await speak(ws, loud=4)
        vad, _ = await recv_until(ws, "vad_score")
        assert vad["vad_score_event"]["vad_score"] == 1.0
        await ws.close()


async def test_tentative_transcripts_while_the_user_speaks_then_the_final_one() -> None:
    async with running(speak_first_message=False, end_of_turn_ms=300) as server:
        ws = await open_conversation(server, init_with(text_only=False))
        await recv_json(ws)  # metadata
        await speak(ws, loud=14, quiet=8)  # 0.7 s of speech, then 0.4 s of silence
        final, before = await recv_until(ws, "user_transcript")
        tentative = [m["tentative_user_transcription_event"] for m in before]
        assert [t["user_transcript"] for t in tentative] == [
            "[0.3 s of speech…]",
            "[0.6 s of speech…]",
        ]
        event_id = final["user_transcription_event"]["event_id"]
        assert {t["event_id"] for t in tentative} == {event_id}
        assert final["user_transcription_event"]["user_transcript"] == "[0.7 s of speech]"
        reply, _ = await recv_until(ws, "agent_response")
        assert reply["agent_response_event"]["event_id"] == event_id
        await ws.close()


async def test_an_interrupted_answer_is_corrected_to_what_was_heard() -> None:
    async with running(voice=VoiceKind.SINE, send_speedup=1.0) as server:
        ws = await open_conversation(server)
        await recv_json(ws)  # metadata
        first, _ = await recv_until(ws, "agent_response")
        greeting = first["agent_response_event"]["agent_response"]
        greeting_id = first["agent_response_event"]["event_id"]
        await recv_until(ws, "audio")
        await asyncio.sleep(0.5)  # about a third of the greeting's 1.6 s played
        await ws.send(json.dumps({"type": "user_message", "text": "hello"}))
        interruption, _ = await recv_until(ws, "interruption")
        correction = await recv_json(ws)
        assert correction["type"] == "agent_response_correction"
        event = correction["agent_response_correction_event"]
        assert event["event_id"] == greeting_id
        assert event["original_agent_response"] == greeting
        heard = event["corrected_agent_response"]
        assert heard
        assert heard != greeting
        assert greeting.startswith(heard)
        assert greeting[len(heard)] == " "  # cut at a word boundary
        assert server.sessions[0].corrections == {greeting_id: heard}
        reply, _ = await recv_until(ws, "agent_response")
        assert (
            reply["agent_response_event"]["event_id"]
            == interruption["interruption_event"]["event_id"]
        )
        await ws.close()


async def test_no_correction_when_client_events_leave_it_out() -> None:
    async with running(voice=VoiceKind.SINE, send_speedup=1.0) as server:
        init = init_with(text_only=False)
        init["conversation_config_override"]["conversation"]["client_events"] = [
            *catalog.DEFAULT_CLIENT_EVENTS
        ]
        ws = await open_conversation(server, init)
        await recv_until(ws, "audio")
        await ws.send(json.dumps({"type": "user_message", "text": "hello"}))
        _, seen = await recv_until(ws, "agent_response")
        assert "interruption" in types_of(seen)
        assert "agent_response_correction" not in types_of(seen)
        await ws.close()


async def test_a_user_message_interrupts_but_context_does_not() -> None:
    async with running(voice=VoiceKind.SINE, send_speedup=1.0) as server:
        ws = await open_conversation(server)
        await recv_json(ws)
        first = await recv_json(ws)
        await ws.send(json.dumps({"type": "contextual_update", "text": "User opened settings"}))
        await ws.send(json.dumps({"type": "user_activity"}))
        await asyncio.sleep(0.2)
        session = server.sessions[0]
        assert session.contextual_updates == ["User opened settings"]
        assert session.user_activity_count == 1
        assert session.interruptions == []
        await ws.send(json.dumps({"type": "user_message", "text": "hello"}))
        interruption, _ = await recv_until(ws, "interruption")
        new_id = interruption["interruption_event"]["event_id"]
        assert new_id > first["agent_response_event"]["event_id"]
        reply, _ = await recv_until(ws, "agent_response")
        # The new reply carries the interruption's id: equal ids play.
        assert reply["agent_response_event"]["event_id"] == new_id
        audio, _ = await recv_until(ws, "audio")
        assert audio["audio_event"]["event_id"] == new_id
        await ws.close()


async def test_a_client_tool_round_trip() -> None:
    async with running(speak_first_message=False) as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        await recv_json(ws)  # metadata
        await ws.send(json.dumps({"type": "user_message", "text": "what's my battery?"}))
        call = (await recv_json(ws))["client_tool_call"]
        result = {"tool_call_id": call["tool_call_id"], "result": "0.82", "is_error": False}
        await ws.send(json.dumps({"type": "client_tool_result", **result}))
        reply, _ = await recv_until(ws, "agent_response")
        assert reply["agent_response_event"]["agent_response"] == "Your battery is at 82 %."
        assert reply["agent_response_event"]["event_id"] == call["event_id"]
        await ws.close()


@pytest.mark.contract_violation
async def test_tool_call_and_non_string_result_is_a_contract_violation() -> None:
    async with running() as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        await recv_until(ws, "agent_response")
        await ws.send(json.dumps({"type": "user_message", "text": "what's my battery?"}))
        call, _ = await recv_until(ws, "client_tool_call")
        body = call["client_tool_call"]
        assert body["tool_name"] == "getBatteryLevel"
        assert body["parameters"] == {}
        await ws.send(
            json.dumps(
                {
                    "type": "client_tool_result",
                    "tool_call_id": body["tool_call_id"],
                    "result": 0.5,
                    "is_error": False,
                }
            )
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_until(ws, "never")
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert "must be a string" in closed.value.rcvd.reason


def _bad(frame: Any, reason: str) -> Any:
    """A frame that breaks the contract on purpose."""
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return pytest.param(text, reason, marks=pytest.mark.contract_violation)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{nope", "Invalid message received"),
        _bad({"type": "made_up"}, "unknown type"),
        _bad({"type": "feedback", "score": "meh", "event_id": 1}, "feedback"),
        _bad({"type": "feedback", "score": "like", "event_id": "1"}, "feedback"),
        _bad({"type": "feedback", "event_id": 1}, "feedback"),
        _bad({"user_audio_chunk": "@@@"}, "user_audio_chunk"),
        (json.dumps(INIT), "already initiated"),
        _bad([1], "Invalid message received"),
        _bad({"type": "user_message", "text": 5}, "user_message"),
        _bad({"type": "contextual_update"}, "contextual_update"),
        _bad({"type": "mcp_tool_approval_result", "tool_call_id": "x"}, "mcp_tool_approval"),
        _bad({"type": "multimodal_message", "text": "hi"}, "multimodal_message"),
        _bad({"type": "multimodal_message", "file": {"type": "file_input"}}, "multimodal"),
    ],
)
async def test_invalid_client_messages_close_with_1008(frame: str, reason: str) -> None:
    async with running() as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        await recv_until(ws, "agent_response")
        await ws.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_until(ws, "never")
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert reason in closed.value.rcvd.reason


async def test_a_first_frame_that_is_not_json_closes() -> None:
    async with running() as server:
        ws = await websockets.connect(server.ws_url())
        await ws.send("garbage")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


@pytest.mark.contract_violation
async def test_bad_dynamic_variables_close() -> None:
    async with running() as server:
        ws = await open_conversation(server, {**INIT, "dynamic_variables": [1]})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_without_initiation_the_agent_goes_on_with_defaults() -> None:
    async with running(initiation_timeout_s=0.2, first_message="Hello.") as server:
        ws = await websockets.connect(server.ws_url())
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
        await ws.close()


async def test_a_first_message_that_is_not_the_initiation_is_handled() -> None:
    async with running(first_message="Hello.") as server:
        ws = await websockets.connect(server.ws_url())
        await ws.send(json.dumps({"type": "user_activity"}))
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
        await server.sessions[0].wait_for(lambda s: s.user_activity_count == 1)
        await ws.close()


async def test_pings_carry_the_measured_round_trip() -> None:
    async with running(ping_interval_s=0.1) as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        first, _ = await recv_until(ws, "ping")
        assert first["ping_event"]["ping_ms"] is None
        await ws.send(json.dumps({"type": "pong", "event_id": first["ping_event"]["event_id"]}))
        second, _ = await recv_until(ws, "ping")
        assert isinstance(second["ping_event"]["ping_ms"], int)
        assert second["ping_event"]["event_id"] > first["ping_event"]["event_id"]
        await ws.close()


async def test_feedback_is_recorded() -> None:
    async with running() as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        response, _ = await recv_until(ws, "agent_response")
        event_id = response["agent_response_event"]["event_id"]
        await ws.send(json.dumps({"type": "feedback", "score": "dislike", "event_id": event_id}))
        session = server.sessions[0]
        await session.wait_for(lambda s: s.feedback == [("dislike", event_id)])
        assert session.ratings == {event_id: "dislike"}
        # The rating can change, and null clears it.
        await ws.send(json.dumps({"type": "feedback", "score": "like", "event_id": event_id}))
        await ws.send(json.dumps({"type": "feedback", "score": None, "event_id": event_id}))
        await session.wait_for(lambda s: len(s.feedback) == 3)
        assert session.feedback[1:] == [("like", event_id), (None, event_id)]
        assert session.ratings == {}
        assert not session.closed.is_set()
        await ws.close()


# ------------------------------------------------------------------ the contract's events


async def test_only_default_events_unless_asked() -> None:
    """A text conversation with a server tool, then hanging up: nothing opt-in comes."""
    async with running(tool_latency_s=0.0) as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        _, seen = await recv_until(ws, "agent_response")
        reply, more = await ask(ws, "what's the weather in Paris?")
        assert "made-up weather" in reply["agent_response_event"]["agent_response"]
        bye, rest = await ask(ws, "bye")
        assert "Goodbye" in bye["agent_response_event"]["agent_response"]
        code, _ = await closed_with(ws)
        assert code == 1000  # end_call closes normally; its tool response was not asked for
        assert types_of([*seen, *more, *rest]) <= {"conversation_initiation_metadata"}
        session = server.sessions[0]
        assert session.client_events == frozenset(DEFAULT_EVENTS)
        assert [c.tool_name for c in session.agent_tool_calls] == ["get_weather", "end_call"]


def test_the_default_events_are_the_contracts_and_the_correction() -> None:
    assert set(DEFAULT_EVENTS) == {*catalog.DEFAULT_CLIENT_EVENTS, "agent_response_correction"}
    assert {"client_tool_call", "error", "mcp_tool_call"} == ALWAYS_SENT
    assert not set(OPT_IN) & set(DEFAULT_EVENTS)


async def test_the_agents_own_client_events_and_the_override() -> None:
    own = ("audio", "agent_response", "mcp_connection_status")
    async with running(client_events=own) as server:
        ws = await open_conversation(server, INIT)
        status = await recv_json(ws)  # no metadata: the agent's list leaves it out
        assert status["type"] == "mcp_connection_status"
        assert status["mcp_connection_status"]["integrations"] == [
            {
                "integration_id": "demo-mcp",
                "integration_type": "mcp_server",
                "is_connected": True,
                "tool_count": len(brain.MCP_TOOLS),
            }
        ]
        assert server.sessions[0].client_events == frozenset(own)
        await ws.close()
        ws = await open_conversation(server, init_with(events=("mcp_connection_status",)))
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
        assert (await recv_json(ws))["type"] == "mcp_connection_status"
        await ws.close()
    async with running(allow_overrides=False, first_message="Hello.") as server:
        ws = await open_conversation(server, init_with(events=("vad_score",)))
        await recv_until(ws, "agent_response")
        assert server.sessions[0].client_events == frozenset(DEFAULT_EVENTS)
        await ws.close()
    with pytest.raises(ValueError, match="made_up"):
        AgentConfig(client_events=("audio", "made_up"))


@pytest.mark.contract_violation
@pytest.mark.parametrize("events", [["made_up"], [], "audio"])
async def test_client_events_that_break_the_contract_close(events: Any) -> None:
    async with running() as server:
        init = init_with()
        init["conversation_config_override"]["conversation"]["client_events"] = events
        ws = await open_conversation(server, init)
        code, reason = await closed_with(ws)
        assert (code, reason) == (1008, "Invalid message received: client_events")


@pytest.mark.parametrize("text_only", [True, False])
async def test_the_weather_is_a_server_tool(text_only: bool) -> None:
    tool_events = ("agent_tool_request", "agent_tool_response", "agent_tool_response_full_payload")
    async with running(speak_first_message=False, tool_latency_s=0.0) as server:
        ws = await open_conversation(server, init_with(text_only=text_only, events=tool_events))
        await recv_json(ws)  # metadata
        reply, before = await ask(ws, "What's the weather in Paris?")
        request, response, full = (m[m["type"]] for m in before)
        event_id = reply["agent_response_event"]["event_id"]
        assert request == {
            "tool_name": "get_weather",
            "tool_call_id": request["tool_call_id"],
            "tool_type": "webhook",
            "event_id": event_id,
        }
        assert response == {**request, "is_error": False, "is_called": True}
        forecast = json.loads(full["full_tool_result"])
        assert forecast == brain.weather_forecast("Paris")
        said = reply["agent_response_event"]["agent_response"]
        assert said == (
            f"In Paris it's {forecast['temperature_c']} °C and {forecast['conditions']}. "
            "That's the demo's made-up weather, not a real forecast."
        )
        if not text_only:
            audio, _ = await recv_until(ws, "audio")
            assert audio["audio_event"]["event_id"] == event_id
        call = server.sessions[0].agent_tool_calls[0]
        assert (call.tool_type, call.parameters, call.is_error) == (
            "webhook",
            {"location": "Paris"},
            False,
        )
        await ws.close()


async def test_hanging_up_reports_end_call_when_asked() -> None:
    async with running(speak_first_message=False) as server:
        ws = await open_conversation(server, init_with(events=("agent_tool_response",)))
        await recv_json(ws)  # metadata
        reply, _ = await ask(ws, "bye")
        response, _ = await recv_until(ws, "agent_tool_response")
        assert response["agent_tool_response"] == {
            "tool_name": "end_call",
            "tool_call_id": f"end_call_{reply['agent_response_event']['event_id']}",
            "tool_type": "system",
            "is_error": False,
            "is_called": True,
            "event_id": reply["agent_response_event"]["event_id"],
        }
        assert (await closed_with(ws))[0] == 1000


@pytest.mark.parametrize(
    ("answer", "state", "error", "said"),
    [
        (True, "success", None, "Done: I sent the email to Bob."),
        (False, "failure", "The user declined the tool call.", "OK, I didn't send the email"),
        (None, "failure", "The approval timed out after 1 s.", "did not come in time"),
    ],
)
async def test_an_mcp_tool_waits_for_approval(
    answer: bool | None, state: str, error: str | None, said: str
) -> None:
    config = {"speak_first_message": False, "tool_latency_s": 0.0, "approval_timeout_s": 0.3}
    async with running(**config) as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        await recv_json(ws)  # metadata
        await ws.send(json.dumps({"type": "user_message", "text": "Send an email to Bob"}))
        waiting = (await recv_json(ws))["mcp_tool_call"]
        assert waiting["state"] == "awaiting_approval"
        assert waiting["approval_timeout_secs"] == 1  # 0.3 s, in whole seconds
        assert (waiting["service_id"], waiting["tool_name"]) == ("demo-mcp", "send_email")
        assert waiting["parameters"]["to"] == "Bob"
        assert datetime.fromisoformat(waiting["timestamp"]).tzinfo is not None
        call_id = waiting["tool_call_id"]
        if answer is not None:
            approval = {"type": "mcp_tool_approval_result", "tool_call_id": call_id}
            await ws.send(json.dumps({**approval, "is_approved": answer}))
        reply, before = await recv_until(ws, "agent_response")
        states = [m["mcp_tool_call"] for m in before]
        assert [s["state"] for s in states] == (["loading", state] if answer else [state])
        assert {s["tool_call_id"] for s in states} == {call_id}
        last = states[-1]
        if error is None:
            assert last["result"] == [
                {"type": "text", "text": "Email to Bob sent (demo: nothing was really sent)."}
            ]
        else:
            assert last["error_message"] == error
        assert said in reply["agent_response_event"]["agent_response"]
        session = server.sessions[0]
        assert session.agent_tool_calls[0].approved is answer
        assert session.mcp_approvals == ({} if answer is None else {call_id: answer})
        await ws.close()


async def test_an_mcp_tool_without_approval_and_its_agent_tool_events() -> None:
    events = ("agent_tool_request", "agent_tool_response")
    async with running(speak_first_message=False, tool_latency_s=0.0) as server:
        ws = await open_conversation(server, init_with(events=events))
        await recv_json(ws)  # metadata
        reply, before = await ask(ws, "search the docs for audio devices")
        assert [m["type"] for m in before] == [
            "agent_tool_request",
            "mcp_tool_call",
            "mcp_tool_call",
            "agent_tool_response",
        ]
        assert [m["mcp_tool_call"]["state"] for m in before[1:3]] == ["loading", "success"]
        assert before[3]["agent_tool_response"]["tool_type"] == "mcp"
        assert reply["agent_response_event"]["agent_response"] == (
            "I searched the docs. Top result for 'audio devices': the voicedesk README "
            "(demo search)."
        )
        await ws.close()


async def test_a_scripted_mcp_call_and_a_stray_approval() -> None:
    async with running(speak_first_message=False, tool_latency_s=0.0) as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        await recv_json(ws)  # metadata
        session = server.sessions[0]
        call = asyncio.ensure_future(session.call_mcp_tool("create_calendar_event", {"x": 1}))
        waiting = (await recv_json(ws))["mcp_tool_call"]
        await ws.send(
            json.dumps(
                {"type": "mcp_tool_approval_result", "tool_call_id": "nope", "is_approved": True}
            )
        )
        await ws.send(
            json.dumps(
                {
                    "type": "mcp_tool_approval_result",
                    "tool_call_id": waiting["tool_call_id"],
                    "is_approved": True,
                }
            )
        )
        done = await asyncio.wait_for(call, scaled(5))
        assert (done.state, done.approved, done.is_error) == ("success", True, False)
        assert session.mcp_approvals == {"nope": True, waiting["tool_call_id"]: True}
        await ws.close()


async def test_multimodal_messages_and_null_texts() -> None:
    async with running(speak_first_message=False) as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        await recv_json(ws)  # metadata
        # A null text asks nothing: the next answer is the multimodal message's.
        await ws.send(json.dumps({"type": "user_message", "text": None}))
        text = {"type": "user_message", "text": "hello"}
        await ws.send(json.dumps({"type": "multimodal_message", "text": text, "file": None}))
        reply, _ = await recv_until(ws, "agent_response")
        assert reply["agent_response_event"]["agent_response"].startswith("Hello!")
        file = {"type": "file_input", "file_id": "file_1"}
        await ws.send(json.dumps({"type": "multimodal_message", "file": file}))
        reply, _ = await recv_until(ws, "agent_response")
        assert reply["agent_response_event"]["agent_response"] == FILES_NOT_SUPPORTED
        await ws.send(json.dumps({"type": "multimodal_message", "text": text, "file": file}))
        reply, _ = await recv_until(ws, "agent_response")
        said = reply["agent_response_event"]["agent_response"]
        assert said.startswith(f"{FILES_NOT_SUPPORTED} Hello!")
        session = server.sessions[0]
        assert session.user_messages == ["hello", "hello"]
        assert session.files == ["file_1", "file_1"]
        await ws.close()


async def test_contextual_updates_with_an_id_keep_the_latest() -> None:
    async with running(speak_first_message=False) as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        await recv_json(ws)  # metadata
        for text in ("Settings open", "Settings closed"):
            await ws.send(
                json.dumps({"type": "contextual_update", "text": text, "context_id": "screen"})
            )
        await ws.send(json.dumps({"type": "contextual_update", "text": "Quiet office"}))
        session = server.sessions[0]
        await session.wait_for(lambda s: len(s.contextual_updates) == 3)
        assert session.contexts == {"screen": "Settings closed"}
        await ws.close()


async def test_errors_carry_a_code_and_a_reason() -> None:
    async with running() as server:
        ws = await open_conversation(server, {**INIT, "dynamic_variables": {}})
        error = (await recv_json(ws))["error_event"]
        assert error == {
            "code": 1008,
            "error_type": "missing_dynamic_variable",
            "reason": "A required dynamic variable is missing.",
            "message": "Missing required dynamic variables in first message: ['platform']",
        }
        assert (await closed_with(ws))[0] == 1008
    async with running(allow_overrides=False) as server:
        override = {"agent": {"first_message": "Yo"}}
        ws = await open_conversation(server, {**INIT, "conversation_config_override": override})
        error = (await recv_json(ws))["error_event"]
        assert (error["code"], error["error_type"]) == (1008, "override_error")
        assert error["reason"]
        assert error["message"] == "Override for field 'first_message' is not allowed by config."
        assert (await closed_with(ws))[0] == 1008


async def test_the_maximum_duration_closes_normally() -> None:
    async with running(max_duration_s=0.3) as server:
        ws = await open_conversation(server, TEXT_ONLY_INIT)
        error, _ = await recv_until(ws, "error")
        # A generic reason, no message (nothing specific to act on); 1000 per the contract.
        assert error["error_event"] == {
            "code": 1000,
            "error_type": "max_duration_exceeded",
            "reason": "Conversation has exceeded maximum duration.",
        }
        assert await closed_with(ws) == (1000, "Conversation has exceeded maximum duration.")
        session = server.sessions[0]
        await asyncio.wait_for(session.closed.wait(), scaled(5))
        assert session.close_code == 1000


# ------------------------------------------------------------------ the rules


@pytest.mark.parametrize(
    ("text", "tool", "params"),
    [
        ("what's my battery?", "getBatteryLevel", {}),
        ("set brightness to 30 %", "changeBrightness", {"brightness": 0.3}),
        ("brightness 0.5 please", "changeBrightness", {"brightness": 0.5}),
        ("set the brightness to 75 percent", "changeBrightness", {"brightness": 0.75}),
        ("flash the screen", "flashScreen", {}),
    ],
)
def test_tools_asked_in_words(text: str, tool: str, params: dict[str, Any]) -> None:
    plan = plan_reply(text)
    assert plan.tool is not None
    assert (plan.tool.name, plan.tool.parameters) == (tool, params)


def test_other_rules() -> None:
    assert plan_reply("brighter please").tool is None
    assert plan_reply("bye!").end_call
    assert plan_reply("hello").say.startswith("Hello!")
    assert plan_reply("tell me a joke").say.startswith("You said: tell me a joke.")
    assert "weather" in brain.CAPABILITIES
    assert "email" in brain.CAPABILITIES


@pytest.mark.parametrize(
    ("text", "tool", "params", "kind", "approval"),
    [
        ("what's the weather in Paris?", "get_weather", {"location": "Paris"}, "webhook", False),
        ("weather in new york tomorrow", "get_weather", {"location": "New York"}, "webhook", False),
        ("Send an email to Bob", "send_email", {"to": "Bob"}, "mcp", True),
        (
            "create a calendar event called Lunch",
            "create_calendar_event",
            {"title": "Lunch"},
            "mcp",
            True,
        ),
        ("schedule a meeting", "create_calendar_event", {"title": "Meeting"}, "mcp", True),
        ("search the docs for audio", "search_docs", {"query": "audio"}, "mcp", False),
    ],
)
def test_the_agents_own_tools_asked_in_words(
    text: str, tool: str, params: dict[str, Any], kind: str, approval: bool
) -> None:
    plan = plan_reply(text)
    assert plan.tool is not None
    assert plan.tool.name == tool
    assert params.items() <= plan.tool.parameters.items()
    assert (plan.tool.kind, plan.tool.needs_approval) == (ToolKind(kind), approval)


def test_what_the_agents_own_tools_need_to_know_first() -> None:
    assert plan_reply("what's the weather?").say.startswith("For which city?")
    assert plan_reply("what's the weather today?").tool is None
    assert plan_reply("send an email").tool is None
    assert plan_reply("search the docs").tool is None
    forecast = brain.weather_forecast("Paris")
    assert forecast == brain.weather_forecast("Paris")  # the same every time
    assert 0 <= forecast["temperature_c"] <= 30
    result, is_error = brain.run_server_tool(ToolRequest("get_weather", {}, ToolKind.WEBHOOK))
    assert is_error
    assert "location" in json.loads(result)["error"]


@pytest.mark.parametrize(
    ("approved", "said"),
    [
        (True, "Done: I created the calendar event 'Lunch'."),
        (False, "OK, I didn't create the calendar event, since you declined."),
        (None, "I didn't create the calendar event: your approval did not come in time."),
    ],
)
def test_replies_to_mcp_results(approved: bool | None, said: str) -> None:
    tool = ToolRequest("create_calendar_event", {"title": "Lunch"}, ToolKind.MCP, True)
    assert brain.reply_to_mcp_result(tool, approved).startswith(said)


@pytest.mark.parametrize(
    ("fraction", "heard"),
    [
        (0.0, ""),
        (0.1, ""),
        (0.2, "Hello"),
        (0.5, "Hello there,"),
        (0.99, "Hello there, how are"),
        (1.0, "Hello there, how are you?"),
        (1.5, "Hello there, how are you?"),
    ],
)
def test_what_was_heard_is_whole_words(fraction: float, heard: str) -> None:
    assert brain.heard_prefix("Hello there, how are you?", fraction) == heard


@pytest.mark.parametrize(
    ("tool", "result", "is_error", "said"),
    [
        ("getBatteryLevel", "0.82", False, "Your battery is at 82 %."),
        ("getBatteryLevel", "full", False, "Your battery says: full"),
        ("getBatteryLevel", "NaN", False, "Your battery says: NaN"),
        ("getBatteryLevel", "no battery", True, "That didn't work: no battery"),
        ("changeBrightness", "0.3", False, "Done: the screen brightness is now 30 %."),
        ("changeBrightness", "ok", False, "Done: ok"),
        ("flashScreen", "Flashed.", False, "I flashed your screen."),
        ("other", "x", False, "The other tool answered: x"),
        ("getBatteryLevel", None, False, "did not answer the getBatteryLevel request in time"),
    ],
)
def test_replies_to_tool_results(tool: str, result: str | None, is_error: bool, said: str) -> None:
    assert said in reply_to_tool_result(ToolRequest(tool), result, is_error)
