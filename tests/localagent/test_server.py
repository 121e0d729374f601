"""The local agent, driven by a bare websocket client (not our session): it must follow
the protocol reference on its own."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import scaled
from voicedesk.audio import codec
from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind
from voicedesk.localagent import voice as voice_module
from voicedesk.localagent.brain import ToolRequest, plan_reply, reply_to_tool_result
from voicedesk.protocol.formats import ALL_FORMATS, parse_audio_format

INIT = {"type": "conversation_initiation_client_data", "dynamic_variables": {"platform": "linux"}}
TEXT_ONLY_INIT = {**INIT, "conversation_config_override": {"conversation": {"text_only": True}}}


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
        # Streamed as parts first, and no audio at all in a text-only conversation.
        assert next(m["text_response_part"]["type"] for m in before) == "start"
        assert all(m["type"] == "agent_chat_response_part" for m in before)
        await ws.send(json.dumps({"type": "user_message", "text": "hi"}))
        _, between = await recv_until(ws, "agent_response")
        assert not [m for m in between if m["type"] == "audio"]
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


async def test_user_speech_interrupts_the_agent_and_gets_a_turn() -> None:
    async with running(voice=VoiceKind.SINE, send_speedup=1.0, end_of_turn_ms=300) as server:
        ws = await open_conversation(server)
        await recv_json(ws)  # metadata
        first = await recv_json(ws)
        speaking_id = first["agent_response_event"]["event_id"]
        fmt = parse_audio_format("pcm_16000")
        loud = codec.encode(voice_module.sine(50, 16000, hz=300, level=0.5), fmt)
        quiet = bytes(len(loud))
        for _ in range(4):
            await ws.send(json.dumps({"user_audio_chunk": base64.b64encode(loud).decode()}))
        interruption, _ = await recv_until(ws, "interruption")
        interrupted_at = interruption["interruption_event"]["event_id"]
        assert interrupted_at > speaking_id
        for _ in range(8):
            await ws.send(json.dumps({"user_audio_chunk": base64.b64encode(quiet).decode()}))
        transcript, _ = await recv_until(ws, "user_transcript")
        assert "s of speech" in transcript["user_transcription_event"]["user_transcript"]
        reply, before = await recv_until(ws, "agent_response")
        assert "without speech recognition" in reply["agent_response_event"]["agent_response"]
        assert (
            any(m["type"] == "vad_score" for m in before) or server.sessions[0].audio_chunks == 12
        )
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


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{nope", "Invalid message received"),
        (json.dumps({"type": "made_up"}), "unknown type"),
        (json.dumps({"type": "feedback", "score": "meh", "event_id": 1}), "feedback"),
        (json.dumps({"user_audio_chunk": "@@@"}), "user_audio_chunk"),
        (json.dumps(INIT), "already initiated"),
        (json.dumps([1]), "Invalid message received"),
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
        await server.sessions[0].wait_for(lambda s: s.feedback == [("dislike", event_id)])
        await ws.close()


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
