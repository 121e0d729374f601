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
    assert "(thanks, feedback sent)" in out
    assert "(context sent)" in out
    assert "Connected (text only" in out
    assert "Agent: Goodbye! Talk to you soon." in out
    assert "Disconnected: The agent ended the conversation." in out
    assert "Traceback" not in result.stderr + out


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
    assert "(thanks, feedback sent)" in out
    assert "There is no new answer to rate yet." in out
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


async def test_the_agent_ending_with_an_error_is_a_nonzero_exit() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None, first_message="Hello."))
    await server.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            *VOICEDESK,
            "console",
            "--server-url",
            server.http_url,
            "--agent-id",
            "a",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        session = await server.next_session(timeout=scaled(15))
        await session.wait_for(lambda s: s.initiation is not None, timeout=scaled(5))
        await asyncio.sleep(0.3)
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
