"""The matrix, the connection: closes, drops, a peer that hangs, frames that are wrong or
huge, a name that does not resolve and a certificate that does not verify. Each runs
the console on a conversation with a server built here, on loopback."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import struct
from pathlib import Path

import pytest

from tests.conftest import scaled
from tests.faults.client import ConsoleCall, assert_history_kept, console_call
from tests.faults.matrix import FaultCase
from voicedesk.config import log_dir
from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind
from voicedesk.localagent.server import AgentSession

pytestmark = pytest.mark.contract_violation  # the server breaks the contract on purpose
GREETING = "Agent: Hi there, woah, so cool"
LOST = "The connection to the agent was lost. Check your network and start again."


@pytest.mark.parametrize(
    ("code", "reason", "said"),
    [
        pytest.param(
            1000,
            "Agent ended conversation",
            "Disconnected: The agent ended the conversation.",
            marks=pytest.mark.fault("close 1000"),
        ),
        pytest.param(
            1002,
            "protocol error",
            "Disconnected: The agent service had an operational problem (protocol error). "
            "Try again in a moment.",
            marks=pytest.mark.fault("close 1002"),
        ),
        pytest.param(
            1008,
            "Invalid message received",
            "Disconnected: The agent refused the conversation (Invalid message received). "
            "Check the agent ID, the API key, the overrides and the dynamic variables.",
            marks=pytest.mark.fault("close 1008"),
        ),
        pytest.param(
            1011,
            "Internal error",
            "Disconnected: The agent service had an internal error (Internal error). "
            "Try again later.",
            marks=pytest.mark.fault("close 1011"),
        ),
    ],
)
async def test_the_server_closes_with_a_code(
    fault: FaultCase, code: int, reason: str, said: str
) -> None:
    async with (
        LocalAgentServer(AgentConfig(ping_interval_s=None)) as server,
        console_call(fault, server.http_url, "--text-only") as call,
    ):
        session = server.sessions[0]
        await _before_the_fault(call)
        fault.inject()
        await session.close(code, reason)
        assert await call.saw("Disconnected:") == said
        assert await call.ended() == (0 if code == 1000 else 1)
    assert_history_kept(fault, "Hi there", "hello", ended=said.removeprefix("Disconnected: "))


async def _before_the_fault(call: ConsoleCall) -> None:
    """The conversation before the fault: the greeting, a message and its answer."""
    await call.line(GREETING)
    call.type("hello")
    await call.line("Agent: Hello!")


@pytest.mark.fault("TCP close, no close frame")
async def test_the_socket_closes_without_a_close_frame(fault: FaultCase) -> None:
    async with (
        LocalAgentServer(AgentConfig(ping_interval_s=None)) as server,
        console_call(fault, server.http_url, "--text-only") as call,
    ):
        await _before_the_fault(call)
        fault.inject()
        transport = server.sessions[0].ws.transport
        assert transport is not None
        transport.close()  # FIN, no websocket close frame
        assert await call.saw("Disconnected:") == f"Disconnected: {LOST}"
        assert await call.ended() == 1
    assert_history_kept(fault, "Hi there", "hello", ended=LOST)


def _reset(session: AgentSession) -> None:
    """Cut the connection with a TCP RST (SO_LINGER 0, then close)."""
    sock = session.ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    session.drop()


@pytest.mark.usefixtures("pulse")
@pytest.mark.fault("TCP reset mid agent audio")
async def test_a_reset_while_the_agent_speaks(fault: FaultCase) -> None:
    config = AgentConfig(ping_interval_s=None, voice=VoiceKind.SINE, speak_first_message=False)
    async with (
        LocalAgentServer(config) as server,
        console_call(fault, server.http_url) as call,
    ):
        session = server.sessions[0]
        engine = call.launcher.engine
        assert engine is not None
        assert engine.output_device is not None
        await session.say("a long answer " * 30)
        await call.line("Agent: a long answer")
        await session.wait_for(lambda s: len(s.sent_audio_event_ids) >= 3, scaled(5))
        assert session.is_speaking
        fault.inject()
        _reset(session)
        assert await call.saw("Disconnected:") == f"Disconnected: {LOST}"
        assert await call.ended() == 1
        assert engine.output_device is None
        assert engine.input_device is None
    assert_history_kept(fault, "a long answer", ended=LOST)


@pytest.mark.fault("half-open connection")
async def test_a_peer_that_stops_answering(fault: FaultCase) -> None:
    interval, timeout, close = 0.5, 1.0, 1.0
    async with (
        LocalAgentServer(AgentConfig(ping_interval_s=None)) as server,
        console_call(
            fault,
            server.http_url,
            "--text-only",
            keepalive_interval_s=interval,
            keepalive_timeout_s=timeout,
            close_timeout_s=close,
        ) as call,
    ):
        await _before_the_fault(call)
        fault.inject()
        server.sessions[0].stall()  # reads nothing more, so no pong comes back
        assert await call.saw("Disconnected:") == f"Disconnected: {LOST}"
        assert await call.ended() == 1
        server.sessions[0].drop()  # the hung peer's side, so the server stops at once
    # the keepalive noticed within its interval and timeout (and the close's wait)
    assert fault.recovery_s is not None
    assert fault.recovery_s < interval + timeout + close + scaled(1.5)
    assert_history_kept(fault, "Hi there", "hello", ended=LOST)


@pytest.mark.fault("metadata never sent")
async def test_the_conversation_never_starts(fault: FaultCase) -> None:
    said = (
        "Could not start the conversation: The agent did not start the conversation "
        "within 1 s. Try again in a moment."
    )
    async with (
        LocalAgentServer(AgentConfig(ping_interval_s=None, send_metadata=False)) as server,
        console_call(
            fault, server.http_url, "--text-only", wait_connected=False, metadata_timeout_s=1.0
        ) as call,
    ):
        fault.inject()
        assert await call.saw("Could not start", timeout=5) == said
        assert await call.ended() == 1
        await asyncio.wait_for(server.sessions[0].closed.wait(), scaled(5))
    assert_history_kept(
        fault, ended=said.removeprefix("Could not start the conversation: "), connected=False
    )


def _bad_frames(n: int) -> list[str | bytes]:
    kinds: list[str | bytes] = [
        "{not json",
        b"\x00\xff\x00 binary",
        '{"type": "no_such_event", "x": 1}',
        '{"type": "agent_response"}',
        '{"type": "audio", "audio_event": {"audio_base_64": "%%%", "event_id": "x"}}',
        '{"type": "ping", "ping_event": "nope"}',
        "[1, 2, 3]",
        "",
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


@pytest.mark.fault("10,000 malformed frames")
async def test_a_burst_of_malformed_and_unknown_frames(fault: FaultCase) -> None:
    async with (
        LocalAgentServer(AgentConfig(ping_interval_s=None)) as server,
        console_call(fault, server.http_url, "--text-only") as call,
    ):
        session = server.sessions[0]
        await _before_the_fault(call)
        fault.inject()
        for frame in _bad_frames(10_000):
            await session.send(frame)
        said = await call.saw("[error]")
        assert said == (
            "[error] The agent sent a message voicedesk could not read; it was skipped and "
            "the conversation goes on."
        )
        call.type("what's my battery?")  # the conversation goes on
        await call.line("[tool] getBatteryLevel", timeout=10)
        assert call.conversation.status.value == "connected"
        assert sum(line.startswith("[error]") for line in call.lines()) == 1
    logged = (log_dir() / "voicedesk.log").read_text().count("ignoring malformed frame")
    assert logged <= 20  # a burst does not rotate the log away
    assert_history_kept(fault, "Hi there", "hello", "what's my battery?")


@pytest.mark.fault("20 MB frame")
async def test_a_twenty_megabyte_frame(fault: FaultCase) -> None:
    huge = '{"type": "agent_response", "agent_response_event": {"agent_response": "%s"}}'
    async with (
        LocalAgentServer(AgentConfig(ping_interval_s=None)) as server,
        console_call(fault, server.http_url, "--text-only") as call,
    ):
        await _before_the_fault(call)
        fault.inject()
        await server.sessions[0].send(huge % ("x" * 20_000_000))
        said = await call.saw("Disconnected:")
        assert await call.ended() == 1
    assert said == (
        "Disconnected: The agent sent a message too large to read (over 16 MB), so the "
        "conversation was ended. Try again in a moment."
    )
    assert_history_kept(fault, "Hi there", "hello", ended=said.removeprefix("Disconnected: "))


@pytest.mark.fault("DNS failure")
async def test_a_name_that_does_not_resolve(
    fault: FaultCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resolver fails at the socket layer (nothing is asked of any name server:
    ``.invalid`` never resolves, RFC 2606, and here it is never even sent)."""
    asked: list[str] = []

    def no_such_name(host: object, *args: object, **kwargs: object) -> object:
        asked.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    fault.inject()
    async with console_call(
        fault, "https://agents.voicedesk.invalid", "--text-only", wait_connected=False
    ) as call:
        said = await call.saw("Could not start")
        assert await call.ended() == 1
    assert asked == ["agents.voicedesk.invalid"]
    assert said == (
        "Could not start the conversation: The agent service's address could not be looked "
        "up. Check your network connection and the server URL."
    )
    assert_history_kept(
        fault, ended=said.removeprefix("Could not start the conversation: "), connected=False
    )


def _self_signed(folder: Path) -> ssl.SSLContext:
    """A TLS context serving a self-signed certificate for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.mark.fault("TLS handshake failure")
async def test_a_certificate_that_does_not_verify(fault: FaultCase, tmp_path: Path) -> None:
    handshakes: list[bool] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshakes.append(True)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=_self_signed(tmp_path))
    port = server.sockets[0].getsockname()[1]
    try:
        fault.inject()
        async with console_call(
            fault, f"https://127.0.0.1:{port}", "--text-only", wait_connected=False
        ) as call:
            said = await call.saw("Could not start")
            assert await call.ended() == 1
    finally:
        server.close()
        await server.wait_closed()
    assert not handshakes  # the client refused the certificate: no connection was made
    assert said == (
        "Could not start the conversation: The agent service's certificate could not be "
        "verified (self-signed certificate), so voicedesk did not connect. Check the server "
        "URL; on a company network, ask whether a proxy inspects encrypted traffic."
    )
    assert_history_kept(
        fault, ended=said.removeprefix("Could not start the conversation: "), connected=False
    )
