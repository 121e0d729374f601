"""The window with what the agent does besides talking: tools it runs elsewhere, MCP tools
that need the user's approval, "typing…", its reasoning, and a default agent that sends
none of the optional events. Text-only, against the local agent."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import scaled
from tests.gui.conftest import Gui, screenshot, until
from voicedesk.config import Settings
from voicedesk.localagent import AgentConfig
from voicedesk.localagent.server import AgentSession, frame_observers
from voicedesk.session.transcript import LineKind, Speaker, ToolState
from voicedesk.ui.window import MainWindow

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]

TOOL_EVENTS = "agent_tool_request,agent_tool_response_full_payload"  # on top of the defaults


def agent_session(gui: Gui) -> AgentSession:
    assert gui.shell is not None
    server = gui.shell.controller.launcher.demo_server
    assert server is not None
    assert server.sessions
    return server.sessions[-1]


async def start(w: MainWindow) -> None:
    w.start_button.click()
    await until(lambda: w.status_label.text() == "Connected", "Connected")
    await until(lambda: "Agent: Hi there" in w.transcript_view.toPlainText(), "the greeting")


def send(w: MainWindow, text: str) -> None:
    w.message_input.setPlainText(text)
    w.send_message_button.click()


@pytest.fixture
def server_frames() -> Iterator[list[str]]:
    """The types of the messages the local agent sends, in order."""
    sent: list[str] = []

    def observe(direction: str, message: Any) -> None:
        if direction == "server" and isinstance(message, dict):
            sent.append(str(message.get("type")))

    frame_observers.append(observe)
    try:
        yield sent
    finally:
        frame_observers.remove(observe)


async def ask_for_approval(w: MainWindow) -> None:
    """Start a demo conversation and ask for something that needs the user's approval."""
    await start(w)
    send(w, "send an email to Bob")
    await until(lambda: bool(w.approval_cards), "the approval card")


def test_a_default_agent_is_enough_for_the_window(gui: Gui, server_frames: list[str]) -> None:
    """No client_events asked for: no chat parts, no vad_score, no tool responses. The
    replies come from agent_response alone; the indicator says the agent listens."""
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        await start(w)
        assert w.speaking.isVisible()
        assert w.speaking.text() == "Agent listening"
        send(w, "what's the weather in Paris?")
        await until(lambda: "Agent: In Paris it's" in w.transcript_view.toPlainText(), "reply")
        lines = shell.controller.transcript.lines
        assert not any(line.tentative for line in lines)
        assert [line.speaker for line in lines] == [
            Speaker.NOTICE,
            Speaker.AGENT,
            Speaker.USER,
            Speaker.AGENT,
        ]
        assert w.speaking.text() == "Agent listening"
        assert not {"agent_chat_response_part", "vad_score", "agent_tool_response"} & set(
            server_frames
        )
        assert "agent_response" in server_frames

    gui.run(flow())


def test_a_tool_the_agent_runs_shows_in_the_transcript(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only", "--client-events", TOOL_EVENTS)
    w = shell.window

    async def flow() -> None:
        await start(w)
        send(w, "what's the weather in Paris?")
        # The stand-in's tool takes 0.2 s: long enough to see it running.
        await until(
            lambda: "Tool: The agent is using get_weather…" in w.transcript_view.toPlainText(),
            "the running tool",
        )
        line = shell.controller.transcript.lines[-1]
        assert line.kind is LineKind.AGENT_TOOL
        assert line.tentative
        await until(lambda: "Agent: In Paris it's" in w.transcript_view.toPlainText(), "reply")
        text = w.transcript_view.toPlainText()
        assert re.search(r'Tool: The agent used get_weather → \{"location": "Paris", ', text)
        assert "Tool: The agent is using" not in text  # one line, updated in place
        assert not line.tentative
        screenshot(w, "transcript-with-agent-tool")

    gui.run(flow())


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "deny"])
def test_an_mcp_tool_asks_with_a_card_and_the_answer_goes_to_the_agent(
    gui: Gui, approve: bool
) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        await start(w)
        assert w.approval_area.isHidden()
        send(w, "send an email to Bob saying hi")
        await until(lambda: bool(w.approval_cards), "the approval card")
        (call_id, card) = next(iter(w.approval_cards.items()))
        assert card.objectName() == "mcpApprovalCard"
        assert card.isVisible()
        assert w.approval_area.isVisible()
        assert card.question.text() == (
            "The agent wants to run send_email on demo-mcp (send an email on the user's "
            "behalf). Allow it?"
        )
        assert card.parameters.text().startswith(
            "to: Bob\nsubject: A message from the voicedesk demo\nbody: send an email to Bob"
        )
        assert re.fullmatch(r"\d+ s left to answer", card.countdown.text())
        assert 25 <= card.seconds_left <= 29  # the agent waits 30 s; we answer a bit earlier
        assert "waits for your approval…" in w.transcript_view.toPlainText()
        screenshot(w, "mcp-approval-card")
        session = agent_session(gui)
        assert not session.mcp_approvals
        (card.approve_button if approve else card.deny_button).click()
        await session.wait_for(lambda s: bool(s.mcp_approvals), timeout=scaled(5))
        assert session.mcp_approvals == {call_id: approve}
        await until(lambda: not w.approval_cards, "the card to go")
        assert w.approval_area.isHidden()
        text = w.transcript_view.toPlainText()
        if approve:
            await until(
                lambda: "Agent: Done: I sent the email to Bob." in w.transcript_view.toPlainText(),
                "the agent's answer",
            )
            text = w.transcript_view.toPlainText()
            assert "Tool: send_email(to='Bob', …) on demo-mcp → Email to Bob sent" in text
        else:
            await until(
                lambda: "Agent: OK, I didn't send the email" in w.transcript_view.toPlainText(),
                "the agent's answer",
            )
            line = shell.controller.transcript.tool_line(call_id)
            assert line is not None
            assert line.state is ToolState.FAILURE
            assert "failed: The user declined the tool call." in line.text

    gui.run(flow())


def test_no_answer_in_time_is_a_denial_and_the_card_goes(gui: Gui) -> None:
    shell = gui.open(
        "--demo",
        "--text-only",
        demo_config=AgentConfig(ping_interval_s=0.2, approval_timeout_s=3.0),
    )
    w = shell.window

    async def flow() -> None:
        await ask_for_approval(w)
        card = next(iter(w.approval_cards.values()))
        assert card.countdown.text() in ("2 s left to answer", "1 s left to answer")
        session = agent_session(gui)
        await session.wait_for(lambda s: bool(s.mcp_approvals), timeout=scaled(5))
        assert list(session.mcp_approvals.values()) == [False]
        await until(lambda: not w.approval_cards, "the card to go")
        assert "not allowed (no answer in time)" in w.transcript_view.toPlainText()

    gui.run(flow())


def test_closing_the_window_denies_an_open_approval(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        await ask_for_approval(w)
        session = agent_session(gui)
        w.close()  # the app then shuts the controller down, as here
        assert shell.closed.is_set()
        await shell.shutdown()
        await session.wait_for(lambda s: s.closed.is_set(), timeout=scaled(5))
        assert list(session.mcp_approvals.values()) == [False]
        assert not w.approval_cards

    gui.run(flow())


def test_the_conversation_ending_removes_the_card(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        await ask_for_approval(w)
        session = agent_session(gui)
        await session.close(1000, "Agent ended the conversation")
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")
        await until(lambda: not w.approval_cards, "the card to go")
        assert "was not run: the conversation ended." in w.transcript_view.toPlainText()

    gui.run(flow())


def test_the_agent_typing_shows_and_goes(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        await start(w)
        assert w.typing_label.isHidden()
        session = agent_session(gui)
        typing = {"type": "agent_typing", "agent_typing_event": {"is_typing": True}}
        await session.send(
            {**typing, "agent_typing_event": {"is_typing": True, "duration_ms": 500}}
        )
        await until(lambda: w.typing_label.isVisible(), "typing…")
        assert w.typing_label.text() == "Agent is typing…"
        screenshot(w, "agent-typing")
        await until(lambda: w.typing_label.isHidden(), "typing… to go after its duration", 3)
        # Without a duration it lasts until the reply.
        await session.send(typing)
        await until(lambda: w.typing_label.isVisible(), "typing… again")
        await asyncio.sleep(0.3)
        assert w.typing_label.isVisible()
        await session.say("Here I am.")
        await until(lambda: w.typing_label.isHidden(), "typing… to go with the reply")

    gui.run(flow())


REASONING = [
    {"text": "", "type": "start", "event_id": "r1"},
    {"text": "The user greets me;", "type": "delta", "event_id": "r1"},
    {"text": " I greet back.", "type": "delta", "event_id": "r1"},
    {"text": "", "type": "stop", "event_id": "r1"},
]


@pytest.mark.parametrize("shown", [False, True], ids=["hidden", "shown"])
def test_the_agent_s_reasoning_shows_only_when_the_setting_says(gui: Gui, shown: bool) -> None:
    shell = gui.open("--demo", "--text-only", settings=Settings(show_reasoning=shown))
    w = shell.window

    async def flow() -> None:
        await start(w)
        session = agent_session(gui)
        for part in REASONING:
            await session.send(
                {"type": "agent_reasoning_response_part", "reasoning_response_part": part}
            )
        await session.say("Hello again.")
        await until(lambda: "Agent: Hello again." in w.transcript_view.toPlainText(), "reply")
        thinking = "Thinking: The user greets me; I greet back."
        assert (thinking in w.transcript_view.toPlainText()) is shown

    gui.run(flow())


def test_settings_keep_environment_branch_and_reasoning(
    gui: Gui, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicedesk import config
    from voicedesk.ui.settings_dialog import SettingsDialog

    shell = gui.open("--text-only")

    def fill(dialog: SettingsDialog) -> int:
        assert dialog.server.findText("sg") >= 0
        dialog.agent_id.setText("agent_abc123")
        dialog.environment.setText("staging")
        dialog.branch_id.setText("agtbrch_1")
        dialog.show_reasoning.setChecked(True)
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", fill)
    shell.open_settings()
    saved = config.load_settings()
    assert (saved.environment, saved.branch_id, saved.show_reasoning) == (
        "staging",
        "agtbrch_1",
        True,
    )
    options = shell.controller.plan.options
    assert (options.environment, options.branch_id) == ("staging", "agtbrch_1")
    assert shell.controller.transcript.show_reasoning
