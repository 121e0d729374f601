"""The matrix, what the app keeps on this computer: no keyring or a locked one, a
settings folder that is read-only or full, a corrupted ``settings.json``, a history file
a crash cut mid-line. ``voicedesk`` runs as a real process here: these faults are met
at start-up, where a user reads the first lines it prints."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.faults.client import (
    assert_history_kept,
    console_call,
    private_agent,
    run_voicedesk,
)
from tests.faults.matrix import FAKE_API_KEY, FaultCase
from voicedesk.config import history_dir, settings_path
from voicedesk.localagent import AgentConfig, LocalAgentServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "hello\n/quit\n"


def _talks(out: str) -> None:
    """The conversation went on after the fault: connected, answered, ended by the user."""
    assert "Connected (text only; conversation conv_local_" in out
    assert "Agent: Hello!" in out
    assert "Disconnected: You ended the conversation." in out


def _user_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _in_private_mount(setup: str) -> list[str]:
    """A prefix that runs the command in a mount namespace of its own after ``setup``
    (shell), so the mounts it makes are seen by that process only."""
    return ["unshare", "-rm", "sh", "-c", f'{setup} && exec "$@"', "sh"]


async def _remember(
    fault: FaultCase, *, key: bool, env: dict[str, str] | None = None, prefix: list[str] | None
) -> tuple[str, LocalAgentServer]:
    """``voicedesk console --remember`` with (``key``) the fake API key for a private agent."""
    agent_cm = private_agent() if key else LocalAgentServer(AgentConfig(ping_interval_s=None))
    async with agent_cm as agent:
        args = ["console", "--server-url", agent.http_url, "--agent-id", "demo", "--text-only"]
        args += ["--remember", *(["--api-key", FAKE_API_KEY] if key else [])]
        fault.inject()
        result = await asyncio.to_thread(
            run_voicedesk, fault, args, stdin=SCRIPT, env=env, prefix=prefix
        )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, agent


@pytest.mark.parametrize(
    ("backend", "said"),
    [
        pytest.param(
            "keyring.backends.fail.Keyring",
            "The API key could not be saved: this system has no usable keyring "
            "(NoKeyringError). Set ELEVENLABS_API_KEY instead; voicedesk never writes the key "
            "to a plain file.",
            marks=pytest.mark.fault("no keyring"),
            id="none",
        ),
        pytest.param(
            "tests.faults.keyrings.LockedKeyring",
            "The API key could not be saved: the keyring is locked. Unlock it (your desktop's "
            "keyring or password manager) and try again, or set ELEVENLABS_API_KEY; voicedesk "
            "never writes the key to a plain file.",
            marks=pytest.mark.fault("locked keyring"),
            id="locked",
        ),
    ],
)
async def test_remembering_the_key_without_a_usable_keyring(
    fault: FaultCase, backend: str, said: str
) -> None:
    out, _ = await _remember(fault, key=True, env={"PYTHON_KEYRING_BACKEND": backend}, prefix=None)
    fault.saw(said)
    assert said in out.splitlines()
    assert f"Saved the agent and server as defaults in {settings_path()}." in out
    _talks(out)  # the key given on the command line still works for this run
    assert FAKE_API_KEY not in settings_path().read_text()
    assert_history_kept(fault, "Hi there", "hello")


@pytest.mark.fault("read-only settings directory")
async def test_remembering_into_a_read_only_folder(fault: FaultCase) -> None:
    folder = settings_path().parent
    folder.mkdir(parents=True)
    quoted = shlex.quote(str(folder))
    if _user_namespaces():
        prefix = _in_private_mount(
            f"mount --bind {quoted} {quoted} && mount -o remount,bind,ro {quoted}"
        )
    elif os.geteuid() != 0:
        folder.chmod(0o500)
        prefix = None
    else:
        pytest.skip("root without user namespaces: no way to make a read-only folder here")
    try:
        out, _ = await _remember(fault, key=False, prefix=prefix)
    finally:
        folder.chmod(0o700)
    strerror = "Read-only file system" if prefix else "Permission denied"
    said = (
        f"The agent and server could not be saved as defaults in {folder} ({strerror}); "
        "they are used for this run only."
    )
    fault.saw(said)
    assert said in out.splitlines()
    _talks(out)
    assert list(folder.iterdir()) == []  # no half-written file left behind
    assert_history_kept(fault, "Hi there", "hello")


@pytest.mark.fault("full settings directory")
async def test_remembering_into_a_full_disk(fault: FaultCase) -> None:
    if not _user_namespaces():
        pytest.skip("a full disk needs a small tmpfs in a mount namespace (unshare -rm)")
    folder = settings_path().parent
    folder.mkdir(parents=True)
    quoted = shlex.quote(str(folder))
    fill = (
        f"mount -t tmpfs -o size=64k tmpfs {quoted} && "
        f"(dd if=/dev/zero of={quoted}/filler bs=4096 2>/dev/null; true)"
    )
    out, _ = await _remember(fault, key=False, prefix=_in_private_mount(fill))
    said = (
        f"The agent and server could not be saved as defaults in {folder} "
        "(No space left on device); they are used for this run only."
    )
    fault.saw(said)
    assert said in out.splitlines()
    _talks(out)
    assert_history_kept(fault, "Hi there", "hello")


@pytest.mark.fault("corrupted settings.json")
async def test_a_corrupted_settings_file(fault: FaultCase) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True)
    damaged = '{"agent_id": "my-agent", "volume": 0.8, "text_only'
    path.write_text(damaged)
    async with LocalAgentServer(AgentConfig(ping_interval_s=None)) as agent:
        args = ["console", "--server-url", agent.http_url, "--agent-id", "demo", "--text-only"]
        fault.inject()
        result = await asyncio.to_thread(run_voicedesk, fault, args, stdin=SCRIPT)
    assert result.returncode == 0, result.stdout + result.stderr
    said = (
        f"[note] The settings file {path} could not be read, so voicedesk started with the "
        "default settings; the damaged file is kept as settings.json.damaged."
    )
    fault.saw(said)
    assert result.stdout.splitlines().count(said) == 1
    _talks(result.stdout)
    assert path.with_name("settings.json.damaged").read_text() == damaged
    assert_history_kept(fault, "Hi there", "hello")


@pytest.mark.fault("history truncated mid-line")
async def test_a_history_file_cut_mid_line(fault: FaultCase) -> None:
    async with (
        LocalAgentServer(AgentConfig(ping_interval_s=None)) as server,
        console_call(fault, server.http_url, "--text-only") as call,
    ):
        await call.line("Agent: Hi there")
        call.type("what's my battery?")
        await call.line("[tool] getBatteryLevel ")
        call.type("hello")
        await call.line("Agent: Hello!")
    (path,) = history_dir().glob("*.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    kept = b"".join(lines[:-1])
    path.write_bytes(kept + lines[-1][: len(lines[-1]) // 2])  # a crash mid-write
    fault.inject()
    listed = await asyncio.to_thread(run_voicedesk, fault, ["history", "list"])
    shown = await asyncio.to_thread(run_voicedesk, fault, ["history", "show", path.stem])
    assert listed.returncode == 0
    assert shown.returncode == 0
    (line,) = listed.stdout.splitlines()
    assert line.startswith(f"{path.stem}  demo  ")
    assert line.endswith("(not ended: the app stopped) (cut short)")
    said = "*(The record stops here: the app stopped while writing it.)*"
    fault.saw(line)
    fault.saw(said)
    markdown = shown.stdout
    assert markdown.rstrip().endswith(said)
    for text in ("**Agent:** Hi there", "**You:** what's my battery?", "**You:** hello"):
        assert text in markdown
    assert "`getBatteryLevel` called {}" in markdown
    assert path.read_bytes().startswith(kept)  # reading never rewrites it
