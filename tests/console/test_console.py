"""The terminal client, as a user runs it: real processes, pipes and a pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scaled
from voicedesk.localagent import AgentConfig, LocalAgentServer

VOICEDESK = [sys.executable, "-m", "voicedesk"]


def run_cli(
    args: list[str], stdin: str = "", timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VOICEDESK, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        env={**os.environ, **(env or {})},
    )


async def run_cli_async(
    args: list[str], stdin: str = "", env: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *VOICEDESK,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), scaled(timeout))
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_demo_conversation_from_a_script() -> None:
    script = "\n".join(
        [
            "hello",
            "what's my battery?",
            "/like",
            "/context User opened settings",
            "set brightness to 30 %",
            "/status",
            "bye",
        ]
    )
    result = run_cli(["console", "--demo", "--text-only"], script)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "Local demo agent on http://127.0.0.1:" in out
    assert "Agent: Hi there, woah, so cool that I'm running on linux." in out
    assert "Agent: Hello! I'm the voicedesk demo agent" in out
    assert re.search(
        r"\[tool\] getBatteryLevel\(\) …\n\[tool\] getBatteryLevel (->|failed:) .+ \[\d+ ms\]", out
    )
    assert "[tool] changeBrightness(brightness=0.3) …" in out
    assert "(rated: like)" in out
    assert "(context sent)" in out
    assert "Connected (text only" in out
    assert "Agent: Goodbye! Talk to you soon." in out
    assert "Disconnected: The agent ended the conversation." in out
    assert "Traceback" not in result.stderr + out


def test_webrtc_with_the_demo_agent_says_it_talks_over_the_websocket() -> None:
    result = run_cli(["console", "--demo", "--text-only", "--transport", "webrtc"], "bye\n")
    assert result.returncode == 0, result.stderr
    assert "[connection] WebRTC carries voice with a conversation token; a text-only " in (
        result.stdout
    )
    assert "Agent: Goodbye! Talk to you soon." in result.stdout


def test_quit_ends_normally_and_end_of_input_too() -> None:
    for script in ("/quit\n", ""):
        result = run_cli(["console", "--demo", "--text-only"], script)
        assert result.returncode == 0
        assert "Disconnected: You ended the conversation." in result.stdout


def test_without_a_display_the_app_talks_in_the_terminal() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    result = subprocess.run(
        [*VOICEDESK, "--demo", "--text-only"],
        input="/quit\n",
        capture_output=True,
        text=True,
        timeout=scaled(30),
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no display here" in result.stderr
    assert "Agent: Hi there" in result.stdout


def test_no_agent_configured_means_the_demo() -> None:
    result = run_cli(["console", "--text-only"], "/quit\n")
    assert result.returncode == 0
    assert "No agent is configured, so voicedesk talks to its local demo agent." in result.stdout


def test_commands_and_their_mistakes() -> None:
    result = run_cli(
        ["console", "--demo"], "/help\n/context\n/nonsense\n/like\n/like\n/mute\n/quit\n"
    )
    out = result.stdout
    assert out.count("Commands: /context TEXT") >= 2
    assert "Usage: /context TEXT" in out
    assert "Unknown command /nonsense." in out
    # The same rating again clears it (the newest official client's rule).
    assert "(rated: like)\n(rating cleared)\n" in out
    assert "Microphone muted." in out


def test_a_refused_connection_is_one_sentence_and_a_nonzero_exit() -> None:
    result = run_cli(["console", "--server-url", "http://127.0.0.1:9", "--agent-id", "x"])
    assert result.returncode == 1
    assert (
        "Could not start the conversation: The agent service refused the connection."
        in result.stdout
    )
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--var", "novalue"], "--var needs KEY=VALUE"),
        (["--agent-id", "a", "--server-url", "http://agents.example.com"], "not encrypted"),
    ],
)
def test_bad_options_say_what_is_wrong(args: list[str], words: str) -> None:
    result = run_cli(["console", *args])
    assert result.returncode == 2
    assert words in result.stderr


def test_version() -> None:
    result = run_cli(["--version"])
    assert result.returncode == 0
    assert result.stdout.startswith("voicedesk ")


async def test_the_api_key_never_shows_in_output_or_logs(tmp_path: Path) -> None:
    key = "sk_super_secret_key_0123456789"
    server = LocalAgentServer(AgentConfig(api_key=key, ping_interval_s=0.1))
    await server.start()
    log_dir = tmp_path / "logs"
    try:
        code, out, err = await run_cli_async(
            [
                "console",
                "--server-url",
                server.http_url,
                "--agent-id",
                "private",
                "--api-key",
                key,
                "--log-level",
                "DEBUG",
            ],
            "hello\n/quit\n",
            env={"VOICEDESK_LOG_DIR": str(log_dir)},
        )
    finally:
        await server.stop()
    assert code == 0, err
    assert "Agent: Hello!" in out
    signatures = server.signatures
    log = (log_dir / "voicedesk.log").read_text()
    assert "connecting to ws://127.0.0.1" in log  # the signed URL was logged, redacted:
    assert "conversation_signature=[redacted]" in log
    for text in (out, err, log):
        assert key not in text
        assert not any(sig in text for sig in signatures)


async def test_a_bad_key_is_a_sentence_about_the_key() -> None:
    server = LocalAgentServer(AgentConfig(api_key="sk_right_0000000000"))
    await server.start()
    try:
        code, out, err = await run_cli_async(
            ["console", "--server-url", server.http_url, "--agent-id", "a"],
            env={"ELEVENLABS_API_KEY": "sk_wrong_0000000000"},
        )
    finally:
        await server.stop()
    assert code == 1
    assert "API key was not accepted" in out
    assert "sk_wrong" not in out + err


async def start_console(
    server: LocalAgentServer, *args: str, agent_id: str = "demo"
) -> asyncio.subprocess.Process:
    """``voicedesk console`` talking to ``server``, its pipes open for the test to drive."""
    return await asyncio.create_subprocess_exec(
        *VOICEDESK,
        "console",
        "--server-url",
        server.http_url,
        "--agent-id",
        agent_id,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_the_agent_ending_with_an_error_is_a_nonzero_exit() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None, first_message="Hello."))
    await server.start()
    try:
        proc = await start_console(server, agent_id="a")
        session = await server.next_session(timeout=scaled(15))
        # Connected: the microphone streams (a close while the devices still open is
        # "could not start", another sentence).
        await session.wait_for(lambda s: s.audio_chunks > 0, timeout=scaled(10))
        await session.close(1011, "internal error")
        out, _ = await asyncio.wait_for(proc.communicate(), scaled(15))
    finally:
        await server.stop()
    assert proc.returncode == 1
    assert "Disconnected: The agent service had an internal error (internal error)." in out.decode()


async def test_localagent_command_serves_conversations() -> None:
    from tests.session.helpers import make
    from voicedesk.protocol.events import AgentResponse

    proc = await asyncio.create_subprocess_exec(
        *VOICEDESK,
        "localagent",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), scaled(15))).decode()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        conv, rec = make(match.group(1))
        assert await conv.start()
        assert "running on linux" in (await rec.wait_for(AgentResponse)).text
        await conv.end()
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), scaled(10))


def _take_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty, as in a shell."""
    import fcntl
    import termios

    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminal")
async def test_typing_in_a_terminal_sends_user_activity_and_ctrl_c_ends() -> None:
    import pty

    server = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await server.start()
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *VOICEDESK,
            "console",
            "--server-url",
            server.http_url,
            "--agent-id",
            "a",
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        session = await server.next_session(timeout=scaled(15))
        output = bytearray()

        async def read_until(text: bytes, timeout: float = 10) -> None:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(scaled(timeout)):
                while text not in output:
                    output.extend(await loop.run_in_executor(None, os.read, master, 4096))

        await read_until(b"Agent: Hi there")
        await read_until(b"Connected (")  # keys typed before this go to the terminal's own line
        for ch in b"hello":
            os.write(master, bytes([ch]))
            await asyncio.sleep(0.1)
        await session.wait_for(lambda s: s.user_activity_count >= 1, timeout=scaled(5))
        assert session.user_activity_count <= 3  # throttled: 5 keys in 0.5 s
        await read_until(b"> hello")  # our own echo of the line being typed
        os.write(master, b"\r")
        await session.wait_for(lambda s: s.user_messages == ["hello"], timeout=scaled(5))
        await read_until(b"Agent: Hello!")
        os.write(master, b"\x03")  # Ctrl+C
        await asyncio.wait_for(proc.wait(), scaled(10))
        assert proc.returncode == 0
        await read_until(b"You ended the conversation.")
    finally:
        os.close(master)
        await server.stop()


# --------------------------------------------------------------------------- agent tools, MCP


async def converse(
    server: LocalAgentServer, script: str, *args: str, timeout: float = 45
) -> tuple[int, str, str]:
    """A scripted text conversation with ``server`` through the console."""
    return await run_cli_async(
        [
            "console",
            "--server-url",
            server.http_url,
            "--agent-id",
            "demo",
            "--text-only",
            *args,
        ],
        script,
        timeout=timeout,
    )


async def test_a_default_agent_is_enough_for_the_console() -> None:
    """No vad_score, chat parts or tool responses (a default real agent): the replies
    show from agent_response alone, a webhook tool just leads to its answer."""
    from voicedesk.localagent import server as agent_server

    sent: list[str] = []
    observe = lambda direction, message: (  # noqa: E731
        sent.append(str(message.get("type"))) if direction == "server" else None
    )
    agent_server.frame_observers.append(observe)
    server = LocalAgentServer(AgentConfig(ping_interval_s=0.2))
    await server.start()
    try:
        code, out, err = await converse(server, "hello\nwhat's the weather in Paris?\n/quit\n")
    finally:
        await server.stop()
        agent_server.frame_observers.remove(observe)
    assert code == 0, err
    assert "Agent: Hello! I'm the voicedesk demo agent" in out
    assert re.search(r"Agent: In Paris it's \d+ °C", out)
    assert "[tool]" not in out  # the agent's own tools are shown only when it says so
    assert not {"vad_score", "agent_chat_response_part", "agent_tool_response"} & set(sent)
    assert "Traceback" not in out + err


async def test_a_tool_the_agent_runs_shows_as_it_runs_and_with_its_result() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await server.start()
    try:
        code, out, err = await converse(
            server,
            "what's the weather in Paris?\n/quit\n",
            "--client-events",
            "agent_tool_request,agent_tool_response_full_payload",
        )
        session = server.sessions[-1]
    finally:
        await server.stop()
    assert code == 0, err
    requested = session.initiation["conversation_config_override"]["conversation"]  # type: ignore[index]
    assert {"audio", "agent_tool_request", "agent_tool_response_full_payload"} <= set(
        requested["client_events"]
    )
    assert re.search(
        r"\[tool\] The agent is using get_weather…\n"
        r"\[tool\] The agent used get_weather → \{\"location\": \"Paris\", .+\}\n"
        r"Agent: In Paris it's",
        out,
    ), out


async def test_an_mcp_tool_asks_and_a_scripted_y_or_n_answers() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await server.start()
    try:
        code, out, err = await converse(
            server,
            "send an email to Bob saying hi\ny\nsend an email to Alice\nno\n/quit\n",
        )
        session = server.sessions[-1]
    finally:
        await server.stop()
    assert code == 0, err
    assert list(session.mcp_approvals.values()) == [True, False]
    question = re.findall(r"\[approve\?\] (.+)", out)
    assert len(question) == 2, out
    assert question[0].startswith(
        "The agent wants to run send_email(to='Bob', subject='A message from the voicedesk demo'"
    )
    assert re.search(
        r"on demo-mcp \(send an email on the user's behalf\)\. Allow it\? "
        r"\[y/n\] \(\d+ s\)$",
        question[0],
    )
    assert "[mcp] send_email(to='Bob', …) on demo-mcp: you allowed it…" in out
    assert "[mcp] send_email(to='Bob', …) on demo-mcp → Email to Bob sent" in out
    assert "Agent: Done: I sent the email to Bob." in out
    assert "[mcp] send_email(to='Alice', …) on demo-mcp: you did not allow it." in out
    assert "Agent: OK, I didn't send the email, since you declined." in out
    assert "Disconnected: You ended the conversation." in out


async def test_an_unanswered_approval_is_a_denial() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None, approval_timeout_s=2.0))
    await server.start()
    try:
        # The script's next line is the answer: it never comes before the time is up.
        proc = await start_console(server, "--text-only")
        assert proc.stdin is not None
        proc.stdin.write(b"send an email to Bob\n")
        await proc.stdin.drain()
        session = await server.next_session(timeout=scaled(15))
        await session.wait_for(lambda s: bool(s.mcp_approvals), timeout=scaled(10))
        assert list(session.mcp_approvals.values()) == [False]
        proc.stdin.write(b"/quit\n")
        out, err = await asyncio.wait_for(proc.communicate(), scaled(15))
    finally:
        await server.stop()
    assert proc.returncode == 0, err.decode()
    assert "not allowed (no answer in time)." in out.decode()


async def test_feedback_toggles_and_the_console_shows_the_rating() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await server.start()
    try:
        code, out, err = await converse(
            server, "/like\n/like\n/dislike\n/status\n/dislike\n/quit\n"
        )
        session = server.sessions[-1]
    finally:
        await server.stop()
    assert code == 0, err
    greeting = max(session.agent_responses)
    assert session.feedback == [
        ("like", greeting),
        (None, greeting),
        ("dislike", greeting),
        (None, greeting),
    ]
    assert "(rated: like)\n(rating cleared)\n(rated: dislike)\n" in out
    assert "latest answer rated dislike)." in out
    assert out.count("(rating cleared)") == 2


async def test_an_error_event_is_shown_and_the_conversation_goes_on() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await server.start()
    try:
        proc = await start_console(server, "--text-only")
        assert proc.stdin is not None
        session = await server.next_session(timeout=scaled(15))
        await session.wait_for(lambda s: bool(s.agent_responses), timeout=scaled(5))
        await session.send(
            {
                "type": "error",
                "error_event": {
                    "code": 1002,
                    "message": "The language model was slow",
                    "error_type": "llm_timeout",
                },
            }
        )
        proc.stdin.write(b"hello\n")
        await proc.stdin.drain()
        await session.wait_for(lambda s: s.user_messages == ["hello"], timeout=scaled(10))
        proc.stdin.write(b"/quit\n")
        out_bytes, err = await asyncio.wait_for(proc.communicate(), scaled(15))
    finally:
        await server.stop()
    out = out_bytes.decode()
    assert proc.returncode == 0, err.decode()
    assert "[error] The language model was slow." in out
    after = out.split("[error] The language model was slow.", 1)[1]
    assert "Agent: Hello!" in after
    assert "Disconnected: You ended the conversation." in after


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tts-speed", "9"], "--tts-speed is the agent's speaking speed"),
        (["--tts-stability", "x"], "a number from 0 to 1, not 'x'"),
        (["--client-events", "audio,vad"], "'vad' is not an event an agent can be asked to send"),
        (["--llm-extra-body", "[1]"], "--llm-extra-body must be a JSON object"),
        (["--llm-extra-body", "{"], "it is not valid JSON"),
        (["--environment", "two words"], "--environment is a single name"),
    ],
)
def test_bad_override_options_are_sentences(args: list[str], words: str) -> None:
    result = run_cli(["console", "--demo", *args])
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr
