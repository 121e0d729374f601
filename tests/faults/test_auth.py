"""The matrix, the signed URL of a private agent: what the REST API can answer instead of
one. A small HTTP server on loopback stands for the API (``--server-url`` points the
client at it); the console asks it with the recognisable fake key of the matrix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.faults.client import assert_history_kept, console_call, private_agent
from tests.faults.matrix import FAKE_API_KEY, FAKE_SIGNATURE, FaultCase
from voicedesk.localagent import LocalAgentServer
from voicedesk.session.endpoints import SIGNED_URL_PATH


@dataclass
class Answer:
    """One answer of the fake API: a status, a body, headers; ``hang``: none at all."""

    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class FakeApi:
    answers: list[Answer]
    url: str = ""
    requests: list[tuple[float, str, str | None]] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1]
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
            self.requests.append((time.monotonic(), path, headers.get("xi-api-key")))
            answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
            if answer.hang:
                await asyncio.sleep(3600)
            body = answer.body.encode()
            lines = [f"HTTP/1.1 {answer.status} X", f"Content-Length: {len(body)}"]
            lines += ["Content-Type: application/json", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in answer.headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def fake_api(*answers: Answer) -> AsyncIterator[FakeApi]:
    api = FakeApi(list(answers))
    server = await asyncio.start_server(api.serve, "127.0.0.1", 0)
    api.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield api
    finally:
        server.close()
        # a hung answer's handler is still waiting: cancel it with the server
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await server.wait_closed()


def _detail(status: str, message: str) -> str:
    return json.dumps({"detail": {"status": status, "message": message}})


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        pytest.param(
            Answer(401, _detail("invalid_api_key", "Invalid API key")),
            "The API key was not accepted. Check the key in Settings (or ELEVENLABS_API_KEY) "
            "and try again.",
            marks=pytest.mark.fault("signed URL 401"),
        ),
        pytest.param(
            Answer(403, _detail("missing_permissions", "The API key lacks convai_read")),
            "The API key may not start conversations with this agent (missing_permissions). "
            "Check that the key has access to ElevenLabs Agents and that the agent belongs "
            "to its account.",
            marks=pytest.mark.fault("signed URL 403"),
        ),
        pytest.param(
            Answer(404, _detail("agent_not_found", "Agent not found")),
            "The agent was not found. Check the agent ID.",
            marks=pytest.mark.fault("signed URL 404"),
        ),
        pytest.param(
            Answer(500, "Internal Server Error"),
            "The ElevenLabs service had a problem (HTTP 500). Try again in a moment.",
            marks=pytest.mark.fault("signed URL 500"),
        ),
        pytest.param(
            Answer(200, "<html>not json</html>"),
            "ElevenLabs answered without a signed URL. Try again in a moment.",
            marks=pytest.mark.fault("signed URL invalid JSON"),
        ),
        pytest.param(
            Answer(hang=True),
            "ElevenLabs did not answer within 1 s. Check your network and try again.",
            marks=pytest.mark.fault("signed URL timeout"),
        ),
    ],
)
async def test_the_signed_url_request_fails(fault: FaultCase, answer: Answer, said: str) -> None:
    async with fake_api(answer) as api:
        fault.inject()
        async with console_call(
            fault,
            api.url,
            "--text-only",
            "--api-key",
            FAKE_API_KEY,
            wait_connected=False,
            connect_timeout_s=1.0,
        ) as call:
            shown = await call.saw("Could not start")
            assert await call.ended() == 1
    assert shown == f"Could not start the conversation: {said}"
    assert [(path.split("?")[0], key) for _, path, key in api.requests] == [
        (SIGNED_URL_PATH, FAKE_API_KEY)  # asked once, with the key: no hidden retries
    ]
    assert_history_kept(fault, ended=said, connected=False)


def _signed_url(agent: LocalAgentServer) -> str:
    return json.dumps(
        {"signed_url": f"{agent.ws_url('demo')}&conversation_signature={FAKE_SIGNATURE}"}
    )


@pytest.mark.fault("signed URL 429")
async def test_busy_twice_then_connected(fault: FaultCase) -> None:
    """429 without Retry-After (the backoff's first delay, ~1 s), then with
    ``Retry-After: 1``, then the signed URL: connected, each wait said."""
    async with private_agent() as agent:
        busy = _detail("system_busy", "busy")
        answers = (Answer(429, busy), Answer(429, busy, {"Retry-After": "1"}))
        async with fake_api(*answers, Answer(200, _signed_url(agent))) as api:
            fault.inject()
            async with console_call(
                fault, api.url, "--text-only", "--api-key", FAKE_API_KEY, wait_connected=False
            ) as call:
                first = await call.line("[note] ElevenLabs is busy")
                connected = await call.saw("Connected (", timeout=10)
                fault.seen[:0] = [line for line in call.lines() if line.startswith("[note]")]
                await call.line("Agent: Hi there")
                call.type("hello")
                await call.line("Agent: Hello!")
    assert first == "[note] ElevenLabs is busy; trying again in 1 s (try 2)."
    assert "[note] ElevenLabs is busy; trying again in 1 s (try 3)." in call.lines()
    assert connected.startswith("Connected (text only; conversation conv_local_")
    times = [t for t, _, _ in api.requests]
    assert len(times) == 3
    assert 0.85 <= times[1] - times[0] <= 1.6  # backoff: 1 s, +-10 % jitter
    assert 0.95 <= times[2] - times[1] <= 1.6  # Retry-After: 1
    assert_history_kept(fault, "Hi there", "hello")


@pytest.mark.fault("signed URL 429 for good")
async def test_busy_for_good_gives_up(fault: FaultCase) -> None:
    busy = Answer(429, _detail("system_busy", "busy"), {"Retry-After": "0"})
    async with fake_api(busy) as api:
        fault.inject()
        async with console_call(
            fault, api.url, "--text-only", "--api-key", FAKE_API_KEY, wait_connected=False
        ) as call:
            shown = await call.saw("Could not start")
            assert await call.ended() == 1
    said = "ElevenLabs is busy right now. Try again in a little while. (Still busy after 4 tries.)"
    assert shown == f"Could not start the conversation: {said}"
    assert len(api.requests) == 4  # bounded
    assert_history_kept(fault, ended=said, connected=False)
