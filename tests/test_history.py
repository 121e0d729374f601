"""The conversation history: written as it happens, read back with corrections applied,
listed, exported, deleted, pruned; a crash loses at most the line being written; the
API key never lands in it."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import scaled
from tests.console.test_console import run_cli
from tests.console.test_handsfree_console import close_console, open_console
from voicedesk import history
from voicedesk.config import SecretRedactor, history_dir
from voicedesk.localagent import LocalAgentServer
from voicedesk.protocol.errors import DisconnectDetails, DisconnectReason
from voicedesk.protocol.events import AgentResponse, AgentResponseCorrection, UserTranscript
from voicedesk.protocol.machine import Connected, Disconnected, ErrorReported
from voicedesk.session import Notice, ToolCallFinished, ToolCallStarted, UserTextSent


def writer(directory: Path, **kwargs: object) -> history.HistoryWriter:
    return history.HistoryWriter(
        directory,
        agent_id="agent_1",
        server="https://api.elevenlabs.io",
        transport="webrtc",
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_conversation_is_written_as_it_happens_and_read_back(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w(Connected("conv_1"))
    assert w.path is not None
    # Each event is on disk as soon as it happened, before the conversation ends.
    w(UserTextSent("what's my battery?", "message"))
    assert "what's my battery?" in w.path.read_text()
    w(AgentResponse("Let me check the lights and the battery.", 4))
    w(ToolCallStarted("t1", "getBatteryLevel", {}))
    w(ToolCallFinished("t1", "getBatteryLevel", {}, "85 %", False, 3.0))
    w(AgentResponseCorrection("Let me check the lights and the battery.", "Let me check", 4))
    w(UserTranscript("thanks", 5))
    w(UserTextSent("the user is in Paris", "context"))
    w(ErrorReported("The agent is busy.", "system_busy"))
    w(Disconnected(DisconnectDetails(DisconnectReason.AGENT, "The agent ended the conversation.")))

    (entry,) = history.list_entries(tmp_path)
    assert entry.conversation_id == "conv_1"
    assert entry.agent_id == "agent_1"
    assert entry.ending == "The agent ended the conversation."
    turns = [
        (t["type"], t.get("text") or t.get("result") or t.get("message")) for t in entry.turns()
    ]
    assert turns == [
        ("connected", None),
        ("user", "what's my battery?"),
        ("agent", "Let me check"),  # the correction applied: what was heard
        ("tool_call", None),
        ("tool_result", "85 %"),
        ("user", "thanks"),
        ("context", "the user is in Paris"),
        ("error", "The agent is busy."),
        ("ended", "The agent ended the conversation."),
    ]
    md = history.to_markdown(entry)
    assert "**You:** what's my battery?" in md
    assert "**Agent:** Let me check *(as heard)*" in md
    assert "`getBatteryLevel` -> 85 %" in md
    exported = json.loads(history.to_json(entry))
    assert exported["conversation_id"] == "conv_1"
    assert exported["events"][2]["text"] == "Let me check"


def test_a_last_line_cut_short_keeps_everything_before_it(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w(Connected("conv_2"))
    w(UserTextSent("hello", "message"))
    assert w.path is not None
    with w.path.open("a") as f:
        f.write('{"t": "2026-11-26T18:00:00Z", "type": "agent", "text": "Hel')  # kill -9
    entry = history.find_entry(tmp_path, w.path.stem)
    assert entry.damaged
    assert [t["type"] for t in entry.turns()] == ["connected", "user"]
    assert "(cut short)" in history.summary_line(entry)
    assert "the app stopped while writing it" in history.to_markdown(entry)


def test_secrets_never_land_in_the_history(tmp_path: Path) -> None:
    SecretRedactor.register("sk_secret_key_123456")
    w = writer(tmp_path)
    w(Connected("conv_3"))
    w(UserTextSent("my key is sk_secret_key_123456, keep it", "message"))
    w(
        ToolCallFinished(
            "t", "x", {"token": "sk_secret_key_123456"}, "sk_secret_key_123456", False, 1
        )
    )
    assert w.path is not None
    assert "sk_secret_key_123456" not in w.path.read_text()


def test_a_history_that_cannot_be_written_is_said_once_and_the_call_goes_on(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "history"
    blocker.write_text("a file where the folder should be")
    said: list[str] = []
    w = writer(blocker, on_problem=said.append)
    w(Connected("conv_4"))
    w(UserTextSent("hello", "message"))
    assert len(said) == 1
    assert said[0].startswith("The conversation history could not be written")
    assert "this conversation is not kept" in said[0]
    w(Notice("ignored"))  # not a kept event: nothing to say


def test_find_delete_and_prune(tmp_path: Path) -> None:
    for _ in range(2):
        w = writer(tmp_path)
        w(Connected("conv"))
        w.close()
    first, second = history.list_entries(tmp_path)
    assert history.find_entry(tmp_path, first.id).id == first.id
    with pytest.raises(history.HistoryError, match="no conversation"):
        history.find_entry(tmp_path, "20000101")
    with pytest.raises(history.HistoryError, match="not a conversation"):
        history.find_entry(tmp_path, "../settings")
    with pytest.raises(history.HistoryError, match="names 2 conversations"):
        history.find_entry(tmp_path, first.id[:8])
    history.delete_entry(tmp_path, first.id)
    assert [e.id for e in history.list_entries(tmp_path)] == [second.id]
    old = time.time() - 40 * 86400
    os.utime(second.path, (old, old))
    assert history.prune(tmp_path, 30) == 1
    assert history.prune(tmp_path, 0) == 0
    assert history.list_entries(tmp_path) == []


def test_the_console_keeps_the_history_and_the_cli_reads_it() -> None:
    result = run_cli(["console", "--demo", "--text-only"], "what's my battery?\nbye\n")
    assert result.returncode == 0, result.stderr
    listed = run_cli(["history", "list"])
    assert listed.returncode == 0
    (line,) = listed.stdout.splitlines()
    entry_id = line.split()[0]
    assert "demo" in line
    assert "The agent ended the conversation." in line
    shown = run_cli(["history", "show", entry_id])
    assert "**You:** what's my battery?" in shown.stdout
    assert "`getBatteryLevel`" in shown.stdout
    assert "**Agent:** Goodbye! Talk to you soon." in shown.stdout
    exported = run_cli(["history", "export", entry_id, "--format", "json"])
    assert json.loads(exported.stdout)["agent_id"] == "demo"
    assert run_cli(["history", "list", "--search", "battery"]).stdout.startswith(entry_id)
    assert (
        "No conversation with that text" in run_cli(["history", "list", "--search", "zebra"]).stdout
    )
    missing = run_cli(["history", "show", "19990101"])
    assert missing.returncode == 1
    assert "There is no conversation '19990101' in the history" in missing.stderr
    assert run_cli(["history", "delete", entry_id]).returncode == 0
    assert "No conversation in the history" in run_cli(["history", "list"]).stdout
    # --no-history keeps nothing.
    assert run_cli(["console", "--demo", "--text-only", "--no-history"], "bye\n").returncode == 0
    assert not list(history.iter_files(history_dir()))


async def test_kill_9_mid_call_loses_nothing_already_said(agent: LocalAgentServer) -> None:
    console = await open_console(agent, "--text-only")
    try:
        await console.wait_for("Agent: Hi there")
        await console.send("what's my battery?")
        await console.wait_for("[tool] getBatteryLevel ")
        await console.wait_for("Agent: ", count=2)
        console.proc.send_signal(signal.SIGKILL)
    finally:
        await close_console(console)
    (entry,) = history.list_entries(history_dir())
    kinds = [t["type"] for t in entry.turns()]
    assert kinds[:2] == ["connected", "agent"]  # the greeting
    assert "user" in kinds
    assert "tool_result" in kinds
    assert entry.ending == "(not ended: the app stopped)"


async def test_the_console_continues_a_dropped_conversation(agent: LocalAgentServer) -> None:
    console = await open_console(agent, "--text-only", "--reconnect-tries", "0")
    try:
        await console.wait_for("Agent: Hi there")
        await console.send("my name is Ada")
        await console.wait_for("You said: my name is Ada")
        agent.sessions[0].drop()
        await console.wait_for("Type /continue to pick the conversation up")
        await console.send("/continue")
        await console.wait_for("Continuing")
        second = await agent.next_session(timeout=scaled(5), after=1)
        await second.wait_for(lambda s: bool(s.contextual_updates), timeout=scaled(5))
        assert "User: my name is Ada" in second.contextual_updates[0]
        await console.send("bye")
        await console.wait_for("Agent: Goodbye! Talk to you soon.")
    finally:
        code = await close_console(console)
    assert "Disconnected: The connection to the agent was lost." in console.out
    assert code == 0, console.out
    # The history keeps both conversations.
    assert len(history.list_entries(history_dir())) == 2
