"""The session against the local agent over real loopback websockets."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from typing import Any

import pytest

from tests.conftest import scaled
from tests.frames import mcp_tool_call
from tests.session.helpers import LoopTicks, RecordingAudioPort, make
from voicedesk import __version__
from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind
from voicedesk.protocol.catalog import DEFAULT_CLIENT_EVENTS
from voicedesk.protocol.errors import DisconnectReason
from voicedesk.protocol.events import (
    AgentResponse,
    ClientToolCall,
    McpConnectionStatus,
    McpToolCall,
    VadScore,
)
from voicedesk.protocol.machine import (
    CanSendFeedbackChanged,
    Connected,
    Disconnected,
    ErrorReported,
    LatencyMeasured,
    McpApprovalRequested,
    Mode,
    ModeChanged,
    Status,
    StatusChanged,
)
from voicedesk.session import (
    AgentTypingChanged,
    AudioUnavailable,
    ToolCallFinished,
    ToolCallStarted,
    WebSocketTransport,
)
from voicedesk.tools import ClientTool, ToolDefinition, ToolOutcome, ToolRegistry


async def server_with(**config: Any) -> LocalAgentServer:
    config.setdefault("ping_interval_s", 0.2)
    server = LocalAgentServer(AgentConfig(**config))
    await server.start()
    return server


def registry(*tools: tuple[str, Any], timeout_s: float = 3.0) -> ToolRegistry:
    return ToolRegistry(
        [
            ClientTool(ToolDefinition(name, f"test tool {name}", timeout_s=timeout_s), fn)
            for name, fn in tools
        ]
    )


# ------------------------------------------------------------------ the tutorial's flow


async def test_text_conversation_every_message_both_ways(agent: LocalAgentServer) -> None:
    conv, rec = make(agent.http_url, dynamic_variables={"user_name": "Thor"}, user_id="u-42")
    assert conv.status is Status.DISCONNECTED
    assert await conv.start()
    assert conv.status is Status.CONNECTED
    assert [e.status for e in rec.of_type(StatusChanged)] == [Status.CONNECTING, Status.CONNECTED]
    session = agent.sessions[0]
    assert (
        rec.of_type(Connected)[0].conversation_id == session.conversation_id == conv.conversation_id
    )

    initiation = session.initiation
    assert initiation is not None
    assert initiation["dynamic_variables"] == {"platform": "linux", "user_name": "Thor"}
    assert initiation["user_id"] == "u-42"
    assert initiation["source_info"] == {"source": "voicedesk", "version": __version__}
    assert initiation["conversation_config_override"] == {"conversation": {"text_only": True}}

    greeting = await rec.wait_for(AgentResponse)
    assert (
        greeting.text
        == "Hi there, woah, so cool that I'm running on linux. What can I help you with?"
    )
    await rec.wait_for(CanSendFeedbackChanged, lambda e: e.can_send_feedback)
    assert conv.can_send_feedback

    assert conv.send_feedback(like=True)
    assert conv.feedback_rating == "like"
    assert conv.can_send_feedback, "the rating can be changed"
    assert conv.send_feedback(like=True)  # pressed again: cleared
    assert conv.feedback_rating is None
    await session.wait_for(lambda s: len(s.feedback) == 2)
    assert session.feedback == [("like", greeting.event_id), (None, greeting.event_id)]

    assert conv.send_user_activity()
    assert conv.send_contextual_update("User opened settings")
    assert conv.send_user_message("hello")
    reply = await rec.wait_for(AgentResponse, lambda e: e.text.startswith("Hello!"))
    assert reply.event_id is not None
    assert reply.event_id > (greeting.event_id or 0)
    await session.wait_for(
        lambda s: s.user_activity_count == 1 and s.contextual_updates == ["User opened settings"]
    )
    assert session.user_messages == ["hello"]

    await rec.wait_for(LatencyMeasured)
    assert conv.latency_ms is not None
    assert session.pongs  # every ping answered

    await conv.end()
    assert conv.status is Status.DISCONNECTED
    details = rec.disconnect().details
    assert details.reason is DisconnectReason.USER
    await asyncio.wait_for(session.closed.wait(), scaled(2))
    assert (session.close_code, session.close_reason) == (1000, "User ended conversation")


async def test_overrides_reach_the_agent_and_the_first_message_is_overridden(
    agent: LocalAgentServer,
) -> None:
    conv, rec = make(
        agent.http_url, first_message="Ahoy from {{platform}}!", language="de", voice_id="v_1"
    )
    assert await conv.start()
    override = agent.sessions[0].initiation["conversation_config_override"]  # type: ignore[index]
    assert override == {
        "agent": {"first_message": "Ahoy from {{platform}}!", "language": "de"},
        "tts": {"voice_id": "v_1"},
        "conversation": {"text_only": True},
    }
    assert (await rec.wait_for(AgentResponse)).text == "Ahoy from linux!"
    await conv.end()


async def test_user_variables_cannot_drop_platform_but_may_override_it(
    agent: LocalAgentServer,
) -> None:
    conv, _ = make(agent.http_url, dynamic_variables={"platform": "custom-os", "n": 3})
    assert await conv.start()
    assert agent.sessions[0].dynamic_variables == {"platform": "custom-os", "n": 3}
    await conv.end()


async def test_messages_are_refused_when_not_connected(agent: LocalAgentServer) -> None:
    conv, _ = make(agent.http_url)
    assert not conv.send_user_message("hi")
    assert not conv.send_contextual_update("x")
    assert not conv.send_user_activity()
    assert not conv.send_feedback(True)
    await conv.end()  # nothing to end: returns at once
    assert conv.last_disconnect is None


async def test_a_new_start_works_after_an_end(agent: LocalAgentServer) -> None:
    conv, rec = make(agent.http_url)
    assert await conv.start()
    first_id = conv.conversation_id
    await conv.end()
    assert await conv.start()
    assert conv.conversation_id != first_id
    assert conv.send_user_message("hello again")
    await rec.wait_for(AgentResponse, lambda e: e.text.startswith("Hello!"))
    await conv.end()
    assert len(rec.of_type(Disconnected)) == 2


async def test_a_listener_that_raises_does_not_break_the_conversation(
    agent: LocalAgentServer,
) -> None:
    conv, rec = make(agent.http_url)

    def broken(event: object) -> None:
        raise RuntimeError("listener bug")

    unsubscribe = conv.add_listener(broken)
    assert await conv.start()
    await rec.wait_for(AgentResponse)
    unsubscribe()
    unsubscribe()  # twice is harmless
    await conv.end()


# ------------------------------------------------------------------ auth


async def test_private_agent_with_api_key_gets_a_signed_url() -> None:
    server = await server_with(api_key="sk_test_private_key_123")
    try:
        conv, rec = make(server.http_url, api_key="sk_test_private_key_123")
        assert await conv.start()
        assert server.signed_url_requests == 1
        await rec.wait_for(AgentResponse)
        await conv.end()
        assert rec.disconnect().details.reason is DisconnectReason.USER
    finally:
        await server.stop()


async def test_the_signed_url_is_asked_for_the_agents_environment_and_branch() -> None:
    server = await server_with(api_key="sk_test_private_key_123")
    try:
        conv, _ = make(
            server.http_url,
            api_key="sk_test_private_key_123",
            environment="staging",
            branch_id="agtbrch_7",
        )
        assert await conv.start()
        (query,) = server.signed_url_queries
        assert query["agent_id"] == ["demo"]
        assert query["environment"] == ["staging"]
        assert query["branch_id"] == ["agtbrch_7"]
        await conv.end()
    finally:
        await server.stop()


async def test_a_bad_api_key_says_so() -> None:
    server = await server_with(api_key="sk_right_key_12345")
    try:
        conv, rec = make(server.http_url, api_key="sk_wrong_key_12345")
        assert not await conv.start()
        assert conv.status is Status.DISCONNECTED
        details = rec.disconnect().details
        assert details.reason is DisconnectReason.ERROR
        assert "API key was not accepted" in details.message
        assert "sk_wrong" not in details.message
        assert server.sessions == []
        assert [e.status for e in rec.of_type(StatusChanged)] == [
            Status.CONNECTING,
            Status.DISCONNECTED,
        ]
    finally:
        await server.stop()


async def test_a_private_agent_without_a_key_is_refused_with_a_sentence() -> None:
    server = await server_with(api_key="sk_right_key_12345")
    try:
        conv, rec = make(server.http_url)
        assert not await conv.start()
        message = rec.disconnect().details.message
        assert "refused the conversation" in message
        assert "signed URL" in message
    finally:
        await server.stop()


async def test_a_signed_url_given_directly() -> None:
    server = await server_with(api_key="sk_right_key_12345")
    try:
        request = urllib.request.Request(
            f"{server.http_url}/v1/convai/conversation/get-signed-url?agent_id=demo",
            headers={"xi-api-key": "sk_right_key_12345"},
        )

        def fetch() -> str:
            with urllib.request.urlopen(request, timeout=5) as response:
                return str(json.load(response)["signed_url"])

        signed_url = await asyncio.to_thread(fetch)
        conv, rec = make("https://unused.example", agent_id=None, signed_url=signed_url)
        assert await conv.start()
        await rec.wait_for(AgentResponse)
        await conv.end()
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"server_url": "http://agents.example.com"}, "not encrypted"),
        ({"server_url": "ftp://x"}, "not valid"),
        ({"agent_id": None}, "No agent is set"),
        ({"agent_id": None, "signed_url": "https://x.example/abc"}, "not a websocket URL"),
        ({"agent_id": None, "signed_url": "ws://x.example/abc"}, "not encrypted"),
    ],
)
async def test_unusable_settings_fail_with_a_sentence(kwargs: dict[str, Any], words: str) -> None:
    url = kwargs.pop("server_url", "https://api.elevenlabs.io")
    conv, rec = make(url, **kwargs)
    assert not await conv.start()
    assert words in rec.disconnect().details.message


async def test_a_refused_connection() -> None:
    server = await server_with()
    url = server.http_url
    await server.stop()  # nothing listens there now
    conv, rec = make(url)
    assert not await conv.start()
    details = rec.disconnect().details
    assert "refused the connection" in details.message
    assert details.transient  # worth another try: the server may come back


async def test_dns_failure() -> None:
    conv, rec = make("https://voicedesk-test.invalid")
    assert not await conv.start()
    assert "could not be looked up" in rec.disconnect().details.message


async def test_dns_failure_getting_a_signed_url() -> None:
    conv, rec = make("https://voicedesk-test.invalid", api_key="sk_some_key_123456")
    assert not await conv.start()
    message = rec.disconnect().details.message
    assert "Could not reach https://voicedesk-test.invalid" in message
    assert "sk_some" not in message


async def _http_server(status: int, body: bytes) -> tuple[asyncio.Server, str]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (500, b'{"detail": "boom"}', "HTTP 500"),
        (429, b'{"detail": {"status": "too_many_concurrent_requests"}}', "Too many conversations"),
        (401, b'{"detail": {"status": "quota_exceeded"}}', "quota is used up"),
    ],
)
async def test_rest_errors_from_the_signed_url_call(status: int, body: bytes, words: str) -> None:
    server, url = await _http_server(status, body)
    try:
        conv, rec = make(url, api_key="sk_some_key_123456")
        assert not await conv.start()
        assert words in rec.disconnect().details.message
    finally:
        server.close()


@pytest.mark.parametrize(
    ("status", "words", "transient"),
    [
        (500, "HTTP 500", True),
        (429, "HTTP 429", True),
        (403, "needs authentication", False),
        (404, "not found", False),
    ],
)
async def test_http_errors_instead_of_a_websocket(status: int, words: str, transient: bool) -> None:
    server, url = await _http_server(status, b"{}")
    try:
        conv, rec = make(url)
        assert not await conv.start()
        details = rec.disconnect().details
        assert words in details.message
        assert details.transient is transient  # a busy service may recover, a refusal won't
    finally:
        server.close()


async def test_a_server_that_never_answers_the_handshake() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conv, rec = make(f"http://127.0.0.1:{port}", connect_timeout_s=0.3)
        assert not await conv.start()
        assert "did not answer within 0.3 s" in rec.disconnect().details.message
        assert rec.disconnect().details.transient
    finally:
        server.close()


async def test_no_metadata_within_the_timeout() -> None:
    server = await server_with(send_metadata=False)
    try:
        conv, rec = make(server.http_url, metadata_timeout_s=0.3)
        started = time.monotonic()
        assert not await conv.start()
        assert time.monotonic() - started < scaled(3)
        details = rec.disconnect().details
        assert "did not start the conversation within 0.3 s" in details.message
        assert details.error_type == "metadata_timeout"
        assert conv.status is Status.DISCONNECTED
    finally:
        await server.stop()


async def test_end_while_waiting_for_metadata() -> None:
    server = await server_with(send_metadata=False)
    try:
        conv, rec = make(server.http_url, metadata_timeout_s=5)
        start = asyncio.ensure_future(conv.start())
        await server.next_session()
        await conv.end()
        assert not await start
        assert rec.disconnect().details.reason is DisconnectReason.USER
    finally:
        await server.stop()


async def test_a_missing_dynamic_variable_is_explained() -> None:
    server = await server_with(first_message="Hello {{user_name}}")
    try:
        conv, rec = make(server.http_url)
        assert not await conv.start()
        details = rec.disconnect().details
        assert details.error_type == "missing_dynamic_variable"
        assert "user_name" in details.message  # the agent's own words: which variable
    finally:
        await server.stop()


async def test_an_override_the_agent_forbids_is_explained() -> None:
    server = await server_with(allow_overrides=False)
    try:
        conv, rec = make(server.http_url, first_message="Yo")
        assert not await conv.start()
        assert rec.disconnect().details.error_type == "override_error"
    finally:
        await server.stop()


# ------------------------------------------------------------------ every way it ends


@pytest.mark.parametrize(
    ("code", "reason", "expected", "words"),
    [
        (1000, "", DisconnectReason.AGENT, "agent ended"),
        (1002, "TTS timeout", DisconnectReason.ERROR, "operational problem (TTS timeout)"),
        (1008, "Invalid message received", DisconnectReason.ERROR, "refused the conversation"),
        (
            1011,
            "Conversation has exceeded maximum duration",
            DisconnectReason.ERROR,
            "maximum duration",
        ),
        (4005, "", DisconnectReason.ERROR, "closed by the server"),
    ],
)
async def test_server_closes_with_any_code(
    agent: LocalAgentServer, code: int, reason: str, expected: DisconnectReason, words: str
) -> None:
    conv, _ = make(agent.http_url)
    assert await conv.start()
    await agent.sessions[0].close(code, reason)
    details = await asyncio.wait_for(conv.wait_disconnected(), scaled(3))
    assert details is not None
    assert details.reason is expected
    assert words in details.message
    assert details.close_code == code
    assert conv.status is Status.DISCONNECTED
    assert await conv.start()  # and a new conversation works
    await conv.end()


async def test_the_agent_hangs_up(agent: LocalAgentServer) -> None:
    conv, rec = make(agent.http_url)
    assert await conv.start()
    conv.send_user_message("ok, bye")
    details = await asyncio.wait_for(conv.wait_disconnected(), scaled(5))
    assert details is not None
    assert details.reason is DisconnectReason.AGENT
    assert await rec.wait_for(AgentResponse, lambda e: "Goodbye" in e.text)


async def test_an_error_event_is_shown_and_the_servers_close_ends_with_it(
    agent: LocalAgentServer,
) -> None:
    conv, rec = make(agent.http_url)
    assert await conv.start()
    session = agent.sessions[0]
    await session.send(
        {"type": "error", "error_event": {"code": 1002, "reason": "The LLM is slow right now"}}
    )
    reported = await rec.wait_for(ErrorReported)
    assert reported.message == "The LLM is slow right now."
    assert not reported.fatal
    # The conversation goes on: an error event alone does not end it.
    conv.send_user_message("hello")
    await rec.wait_for(AgentResponse, lambda e: e.text.startswith("Hello!"))
    assert conv.status is Status.CONNECTED
    await session.send(
        {"type": "error", "error_event": {"code": 1002, "error_type": "llm_timeout"}}
    )
    await rec.wait_for(ErrorReported, lambda e: e.error_type == "llm_timeout")
    await session.close(1002, "LLM timeout")
    details = await asyncio.wait_for(conv.wait_disconnected(), scaled(3))
    assert details is not None
    assert details.error_type == "llm_timeout"
    assert "language model took too long" in details.message
    assert details.close_code == 1002


async def test_the_maximum_duration() -> None:
    server = await server_with(max_duration_s=0.4)
    try:
        conv, _ = make(server.http_url)
        assert await conv.start()
        details = await asyncio.wait_for(conv.wait_disconnected(), scaled(3))
        assert details is not None
        assert "maximum duration" in details.message
    finally:
        await server.stop()


async def test_network_drop(agent: LocalAgentServer) -> None:
    conv, _ = make(agent.http_url)
    assert await conv.start()
    agent.sessions[0].drop()
    details = await asyncio.wait_for(conv.wait_disconnected(), scaled(3))
    assert details is not None
    assert details.is_error
    assert "connection to the agent was lost" in details.message


async def test_a_stalled_server_is_detected_by_keepalive(agent: LocalAgentServer) -> None:
    conv, _ = make(agent.http_url, keepalive_interval_s=0.2, keepalive_timeout_s=0.3)
    assert await conv.start()
    agent.sessions[0].stall()
    details = await asyncio.wait_for(conv.wait_disconnected(), scaled(5))
    assert details is not None
    assert "lost" in details.message


async def test_junk_from_the_server_never_breaks_the_conversation(agent: LocalAgentServer) -> None:
    conv, rec = make(agent.http_url)
    assert await conv.start()
    session = agent.sessions[0]
    for junk in (
        b"\x00\xffbinary",
        "{not json",
        "[]",
        json.dumps({"type": "mcp_tool_call", "whatever": 1}),
        json.dumps({"type": "audio", "audio_event": {"audio_base_64": "@@@"}}),
        json.dumps({"type": "ping", "ping_event": {"event_id": "x"}}),
        json.dumps({"type": "client_tool_call", "client_tool_call": {"tool_name": 3}}),
        json.dumps({"no": "type"}),
    ):
        await session.send(junk)
    conv.send_user_message("hello")
    await rec.wait_for(AgentResponse, lambda e: e.text.startswith("Hello!"))
    assert conv.status is Status.CONNECTED
    reported = rec.of_type(ErrorReported)
    assert len(reported) == 1
    assert "could not read" in reported[0].message
    await conv.end()


# ------------------------------------------------------------------ client tools


async def test_tool_results_are_protocol_strings(agent: LocalAgentServer) -> None:
    async def async_tool(params: Any) -> dict[str, Any]:
        return {"ok": True, "n": 2}

    tools = registry(
        ("zero", lambda p: 0),
        ("half", lambda p: 0.5),
        ("one_float", lambda p: 1.0),
        ("nothing", lambda p: None),
        ("yes", lambda p: True),
        ("obj", async_tool),
        ("outcome", lambda p: ToolOutcome(0.82, "charging")),
        ("echo", lambda p: p["brightness"]),
    )
    conv, rec = make(agent.http_url, tools=tools)
    assert await conv.start()
    session = agent.sessions[0]
    expected = {
        "zero": "0",
        "half": "0.5",
        "one_float": "1",
        "nothing": "Client tool execution successful.",
        "yes": "true",
        "obj": '{"ok":true,"n":2}',
        "outcome": "0.82",
    }
    for name, result in expected.items():
        outcome = await session.call_tool(name)
        assert outcome is not None, name
        assert (outcome.result, outcome.is_error) == (result, False), name
    echoed = await session.call_tool("echo", {"brightness": 0.3})
    assert echoed is not None
    assert echoed.result == "0.3"
    finished = {e.tool_name: e for e in rec.of_type(ToolCallFinished)}
    assert finished["outcome"].detail == "charging"
    assert finished["echo"].parameters == {"brightness": 0.3}
    assert all(e.duration_ms >= 0 for e in finished.values())
    assert len(rec.of_type(ToolCallStarted)) == len(expected) + 1
    await conv.end()


async def test_tool_errors(agent: LocalAgentServer) -> None:
    def broken(params: Any) -> None:
        raise ValueError("no screen here")

    def silent_failure(params: Any) -> None:
        raise RuntimeError

    def slow(params: Any) -> str:
        time.sleep(0.6)
        return "late"

    async def slow_async(params: Any) -> str:
        await asyncio.sleep(5)
        return "late"

    tools = registry(
        ("broken", broken),
        ("silent", silent_failure),
        ("slow", slow),
        ("slow_async", slow_async),
        timeout_s=0.2,
    )
    conv, _ = make(agent.http_url, tools=tools)
    assert await conv.start()
    session = agent.sessions[0]
    cases = {
        "broken": "Client tool execution failed: no screen here",
        "silent": "Client tool execution failed: RuntimeError",
        "slow": "Client tool execution failed: slow did not finish within 0.2 s.",
        "slow_async": "Client tool execution failed: slow_async did not finish within 0.2 s.",
        "nope": "Client tool with name nope is not defined on client",
    }
    for name, result in cases.items():
        outcome = await session.call_tool(name)
        assert outcome is not None, name
        assert (outcome.result, outcome.is_error) == (result, True), name
    await conv.end()
    await asyncio.sleep(0.6)  # let the abandoned slow thread finish before the leak check


async def test_a_blocking_tool_never_blocks_the_event_loop(agent: LocalAgentServer) -> None:
    def blocking(params: Any) -> str:
        time.sleep(0.5)
        return "done"

    conv, _ = make(agent.http_url, tools=registry(("blocking", blocking)))
    assert await conv.start()
    async with LoopTicks() as ticks:
        outcome = await agent.sessions[0].call_tool("blocking")
    assert outcome is not None
    assert outcome.result == "done"
    assert ticks.count >= 20  # the loop ran all along (>= 0.2 s of 10 ms ticks in 0.5 s)
    await conv.end()


async def test_the_agent_calls_tools_when_asked_in_words(agent: LocalAgentServer) -> None:
    tools = registry(
        ("getBatteryLevel", lambda p: 0.82), ("changeBrightness", lambda p: p["brightness"])
    )
    conv, rec = make(agent.http_url, tools=tools)
    assert await conv.start()
    conv.send_user_message("what's my battery?")
    assert (
        await rec.wait_for(AgentResponse, lambda e: "battery" in e.text)
    ).text == "Your battery is at 82 %."
    conv.send_user_message("set brightness to 30 %")
    await rec.wait_for(AgentResponse, lambda e: "brightness" in e.text)
    call = next(e for e in rec.of_type(ClientToolCall) if e.tool_name == "changeBrightness")
    assert call.parameters == {"brightness": 0.3}
    await conv.end()


async def test_a_tool_result_after_the_end_is_not_sent(agent: LocalAgentServer) -> None:
    release = asyncio.Event()

    async def waits(params: Any) -> str:
        await release.wait()
        return "late"

    conv, rec = make(agent.http_url, tools=registry(("waits", waits)))
    assert await conv.start()
    session = agent.sessions[0]
    call = asyncio.ensure_future(session.call_tool("waits"))
    await rec.wait_for(ToolCallStarted)
    await conv.end()
    release.set()
    assert await call is None  # no answer came before the socket closed
    assert "client_tool_result" not in [m.get("type") for m in session.received]


# ------------------------------------------------------------------ audio hooks


async def test_audio_hooks_formats_playback_interruption_and_mic() -> None:
    server = await server_with(
        agent_output_audio_format="pcm_44100",
        user_input_audio_format="ulaw_8000",
        voice=VoiceKind.SINE,
    )
    try:
        port = RecordingAudioPort()
        conv, rec = make(server.http_url, audio=port, text_only=False)
        conv.set_volume(0.5)
        conv.set_mic_muted(True)
        assert await conv.start()
        assert not conv.is_text_only
        session = server.sessions[0]
        assert "conversation_config_override" not in (session.initiation or {})
        assert port.formats is not None
        assert [f.name for f in port.formats] == ["ulaw_8000", "pcm_44100"]
        assert (port.muted, port.volume) == (True, 0.5)
        await session.wait_for(lambda s: len(s.sent_audio_event_ids) >= 1)
        await asyncio.sleep(0.05)
        assert port.played
        assert all(len(chunk) > 0 for chunk in port.played)

        # Playback hooks drive the mode.
        assert port.sink is not None
        port.sink.on_playback_started()
        assert conv.mode is Mode.SPEAKING
        assert conv.is_speaking
        port.sink.on_playback_stopped()
        assert conv.mode is Mode.LISTENING
        assert [e.mode for e in rec.of_type(ModeChanged)] == [Mode.SPEAKING, Mode.LISTENING]

        # Interruption: the port is told, stale audio never reaches it, the new reply does.
        before = len(port.played)
        await session.send({"type": "interruption", "interruption_event": {"event_id": 50}})
        await session.send(
            {"type": "audio", "audio_event": {"audio_base_64": "AAAA", "event_id": 49}}
        )
        await session.send(
            {"type": "audio", "audio_event": {"audio_base_64": "AQEB", "event_id": 50}}
        )
        await asyncio.sleep(0.1)
        assert port.interruptions >= 1
        assert b"\x00\x00\x00" not in port.played[before:]
        assert b"\x01\x01\x01" in port.played[before:]

        # Mic chunks from the engine reach the agent as user_audio_chunk.
        port.sink.on_mic_audio(b"\xff" * 160)
        await session.wait_for(lambda s: s.audio_chunks >= 1)
        assert bytes(session.audio_in[-160:]) == b"\xff" * 160

        conv.set_volume(2.0)
        assert port.volume == 1.0
        conv.set_mic_muted(False)
        assert port.muted is False
        await conv.end()
        assert port.stopped == 1
    finally:
        await server.stop()


async def test_no_audio_device_means_text_only_with_a_sentence() -> None:
    server = await server_with()
    try:
        port = RecordingAudioPort(fail_with="No microphone was found.")
        conv, rec = make(server.http_url, audio=port, text_only=False)
        assert await conv.start()
        assert conv.is_text_only
        unavailable = rec.of_type(AudioUnavailable)
        assert unavailable
        assert (
            unavailable[0].message == "No microphone was found. The conversation goes on as text."
        )
        conv.send_user_message("hello")
        await rec.wait_for(AgentResponse, lambda e: e.text.startswith("Hello!"))
        await conv.end()
    finally:
        await server.stop()


async def test_audio_failure_mid_call_falls_back_to_text(agent: LocalAgentServer) -> None:
    port = RecordingAudioPort()
    conv, rec = make(agent.http_url, audio=port, text_only=False)
    assert await conv.start()
    assert port.sink is not None
    port.sink.on_playback_started()
    port.sink.on_audio_failure("The speaker was unplugged.")
    assert conv.is_text_only
    assert conv.mode is Mode.LISTENING
    assert rec.of_type(AudioUnavailable)[0].message == "The speaker was unplugged."
    assert conv.status is Status.CONNECTED
    await conv.end()
    assert port.stopped == 0  # already gone: not stopped twice


async def test_mcp_tools_are_approved_denied_or_timed_out_by_the_approver(
    agent: LocalAgentServer,
) -> None:
    asked: list[McpToolCall] = []
    answers = {"m_yes": True, "m_no": False}

    async def approver(call: McpToolCall) -> bool:
        asked.append(call)
        if call.tool_call_id == "m_never":
            await asyncio.Event().wait()  # the user never answers
        return answers[call.tool_call_id]

    conv, _ = make(agent.http_url)
    conv.approver = approver
    assert await conv.start()
    session = agent.sessions[0]
    for call_id, timeout in (("m_yes", 30), ("m_no", 30), ("m_never", 1)):
        await session.send(
            mcp_tool_call(call_id, "awaiting_approval", approval_timeout_secs=timeout)
        )
    await session.wait_for(
        lambda s: len(s.messages_of_type("mcp_tool_approval_result")) == 3, timeout=scaled(5)
    )
    results = {
        m["tool_call_id"]: m["is_approved"]
        for m in session.messages_of_type("mcp_tool_approval_result")
    }
    assert results == {"m_yes": True, "m_no": False, "m_never": False}
    assert [c.tool_name for c in asked] == ["send_email"] * 3
    assert conv.pending_approvals == ()
    await conv.end()


async def test_an_mcp_call_settled_before_the_user_answers_withdraws_the_question(
    agent: LocalAgentServer,
) -> None:
    cancelled = asyncio.Event()

    async def approver(call: McpToolCall) -> bool:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return True  # pragma: no cover - never reached

    conv, rec = make(agent.http_url)
    conv.approver = approver
    assert await conv.start()
    session = agent.sessions[0]
    await session.send(mcp_tool_call("m1", "awaiting_approval", approval_timeout_secs=30))
    await rec.wait_for(McpApprovalRequested)
    await session.send(mcp_tool_call("m1", "failure", error_message="approval timed out"))
    await asyncio.wait_for(cancelled.wait(), scaled(3))
    assert session.messages_of_type("mcp_tool_approval_result") == []
    await conv.end()


async def test_without_an_approver_mcp_calls_are_denied(agent: LocalAgentServer) -> None:
    conv, _ = make(agent.http_url)
    assert await conv.start()
    session = agent.sessions[0]
    await session.send(mcp_tool_call("m1", "awaiting_approval", approval_timeout_secs=30))
    await session.wait_for(
        lambda s: bool(s.messages_of_type("mcp_tool_approval_result")), timeout=scaled(3)
    )
    assert session.messages_of_type("mcp_tool_approval_result")[0]["is_approved"] is False
    assert conv.approve_mcp_tool("m1", True) is False  # answered already
    await conv.end()


async def test_the_user_can_answer_an_approval_directly(agent: LocalAgentServer) -> None:
    async def approver(call: McpToolCall) -> bool:
        await asyncio.Event().wait()
        return False  # pragma: no cover - never reached

    conv, rec = make(agent.http_url)
    conv.approver = approver
    assert await conv.start()
    session = agent.sessions[0]
    await session.send(mcp_tool_call("m1", "awaiting_approval", approval_timeout_secs=30))
    await rec.wait_for(McpApprovalRequested)
    assert conv.approve_mcp_tool("m1", True)
    await session.wait_for(
        lambda s: bool(s.messages_of_type("mcp_tool_approval_result")), timeout=scaled(3)
    )
    assert session.messages_of_type("mcp_tool_approval_result") == [
        {"type": "mcp_tool_approval_result", "tool_call_id": "m1", "is_approved": True}
    ]
    await conv.end()


async def test_agent_typing_shows_and_clears_by_its_duration_or_the_reply(
    agent: LocalAgentServer,
) -> None:
    conv, rec = make(agent.http_url)
    assert await conv.start()
    session = agent.sessions[0]
    await session.send(
        {"type": "agent_typing", "agent_typing_event": {"is_typing": True, "duration_ms": 200}}
    )
    await rec.wait_for(AgentTypingChanged, lambda e: e.is_typing)
    assert conv.is_agent_typing
    await rec.wait_for(AgentTypingChanged, lambda e: not e.is_typing, timeout=2)
    await session.send({"type": "agent_typing", "agent_typing_event": {"is_typing": True}})
    await asyncio.sleep(0.05)
    assert conv.is_agent_typing
    conv.send_user_message("hello")
    await rec.wait_for(AgentResponse, lambda e: e.text.startswith("Hello!"))
    assert not conv.is_agent_typing
    await session.send({"type": "agent_typing", "agent_typing_event": {"is_typing": True}})
    await asyncio.sleep(0.05)
    await conv.end()
    assert not conv.is_agent_typing, "the end clears it"


async def test_end_call_in_the_full_payload_form_is_the_agent_hanging_up(
    agent: LocalAgentServer,
) -> None:
    conv, _ = make(agent.http_url)
    assert await conv.start()
    await agent.sessions[0].send(
        {
            "type": "agent_tool_response_full_payload",
            "agent_tool_response_full_payload": {
                "tool_name": "end_call",
                "tool_call_id": "e1",
                "tool_type": "system",
                "is_error": True,
                "is_called": True,
                "event_id": 3,
                "full_tool_result": "",
            },
        }
    )
    details = await asyncio.wait_for(conv.wait_disconnected(), scaled(3))
    assert details is not None
    assert details.reason is DisconnectReason.AGENT


async def test_every_override_reaches_the_agent(agent: LocalAgentServer) -> None:
    conv, _ = make(
        agent.http_url,
        prompt="Be brief.",
        llm="gemini-2.0-flash",
        first_message="Yo {{platform}}",
        language="de",
        voice_id="v1",
        tts_speed=1.1,
        tts_stability=0.3,
        tts_similarity_boost=0.8,
        asr_keywords=("voicedesk",),
        client_events=("audio", "agent_response", "vad_score"),
        custom_llm_extra_body={"temperature": 0.1},
        environment="staging",
        branch_id="b1",
    )
    assert await conv.start()
    session = agent.sessions[0]
    initiation = session.initiation
    assert initiation is not None
    assert initiation["conversation_config_override"] == {
        "agent": {
            "prompt": {"prompt": "Be brief.", "llm": "gemini-2.0-flash"},
            "first_message": "Yo {{platform}}",
            "language": "de",
        },
        "tts": {"voice_id": "v1", "speed": 1.1, "stability": 0.3, "similarity_boost": 0.8},
        "asr": {"keywords": ["voicedesk"]},
        "conversation": {
            "text_only": True,
            # Asked for on top of the defaults the client needs.
            "client_events": [*DEFAULT_CLIENT_EVENTS, "vad_score"],
        },
    }
    assert initiation["custom_llm_extra_body"] == {"temperature": 0.1}
    request = session.ws.request
    assert request is not None
    assert "environment=staging" in request.path
    assert "branch_id=b1" in request.path
    await conv.end()


async def test_vad_scores_reach_listeners(agent: LocalAgentServer) -> None:
    conv, rec = make(agent.http_url)
    assert await conv.start()
    await agent.sessions[0].send({"type": "vad_score", "vad_score_event": {"vad_score": 0.7}})
    assert (await rec.wait_for(VadScore)).score == 0.7
    await conv.end()


async def test_end_returns_even_when_the_close_handshake_hangs(
    agent: LocalAgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A close that never completes (a peer or event loop that loses the close frame)
    must not keep the user's End waiting: the connection is cut after the timeout."""
    conv, rec = make(agent.http_url, close_timeout_s=0.3)
    assert await conv.start()
    transport = conv._transport
    assert isinstance(transport, WebSocketTransport)
    ws = transport.connection
    assert ws is not None

    async def close_forever(*args: Any, **kwargs: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(ws, "close", close_forever)
    started = time.monotonic()
    await asyncio.wait_for(conv.end(), scaled(5))
    assert time.monotonic() - started < scaled(2.5)
    assert conv.status is Status.DISCONNECTED
    assert rec.disconnect().details.reason is DisconnectReason.USER


async def test_typing_sends_user_activity_a_few_times_a_second(agent: LocalAgentServer) -> None:
    conv, _ = make(agent.http_url)
    assert not conv.user_typing()  # not connected: nothing to tell
    assert await conv.start()
    session = agent.sessions[0]
    sent = [conv.user_typing() for _ in range(5)]
    assert sent == [True, False, False, False, False]
    await asyncio.sleep(0.35)
    assert conv.user_typing()
    await session.wait_for(lambda s: s.user_activity_count == 2, timeout=scaled(5))
    await conv.end()


async def test_context_usage_and_mcp_connection_status_go_to_the_log(
    agent: LocalAgentServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voicedesk.session.conversation")
    conv, rec = make(agent.http_url)
    assert await conv.start()
    session = agent.sessions[0]
    await session.send(
        {
            "type": "context_usage",
            "context_usage_event": {
                "event_id": 3,
                "model": "gemini",
                "context_tokens": 1200,
                "context_limit_tokens": 32000,
            },
        }
    )
    await session.send(
        {
            "type": "mcp_connection_status",
            "mcp_connection_status": {
                "integrations": [
                    {
                        "integration_id": "crm",
                        "integration_type": "mcp_server",
                        "is_connected": False,
                        "tool_count": 0,
                    }
                ]
            },
        }
    )
    await rec.wait_for(McpConnectionStatus)
    messages = [r.getMessage() for r in caplog.records]
    assert "context usage: 1200 of 32000 tokens (gemini)" in messages
    assert "MCP mcp_server crm: NOT connected, 0 tools" in messages
    await conv.end()
