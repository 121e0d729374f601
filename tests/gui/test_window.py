"""The window against the local agent: the tutorial's flow, what a desktop user adds to it,
and every error path's banner. Text-only here; the voice flow is in test_voice_window.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel

from tests.gui.conftest import Gui, screenshot, until
from voicedesk.config import Settings
from voicedesk.localagent import AgentConfig, LocalAgentServer
from voicedesk.session.endpoints import platform_name
from voicedesk.session.transcript import Speaker
from voicedesk.ui.widgets import STATUS_COLORS

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]


def agent_session(gui: Gui) -> object:
    assert gui.shell is not None
    server = gui.shell.controller.launcher.demo_server
    assert server is not None
    assert server.sessions
    return server.sessions[-1]


def test_the_tutorial_flow_in_text(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window
    assert w.status_label.text() == "Disconnected"
    assert w.status_dot.color() == QColor(STATUS_COLORS["disconnected"])
    assert w.start_button.isEnabled()
    assert not w.end_button.isEnabled()
    assert not w.send_message_button.isEnabled()
    assert w.feedback_row.isHidden()

    # What the header showed at each status (the demo connects within a few ms: too
    # fast to catch "Connecting" by looking).
    shown: list[tuple[str, QColor]] = []
    shell.controller.statusChanged.connect(
        lambda _: shown.append((w.status_label.text(), w.status_dot.color()))
    )

    async def flow() -> None:
        w.start_button.click()
        assert w.start_button.text() == "Starting…"
        assert not w.start_button.isEnabled()
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        assert shown[0] == ("Connecting", QColor(STATUS_COLORS["connecting"]))
        assert w.status_dot.color() == QColor(STATUS_COLORS["connected"])
        assert w.end_button.isEnabled()
        assert not w.start_button.isEnabled()
        assert w.start_button.text() == "Start conversation"
        await until(
            lambda: "What can I help you with?" in w.transcript_view.toPlainText(),
            "greeting",
        )
        assert f"running on {platform_name()}" in w.transcript_view.toPlainText()
        session = agent_session(gui)

        # Like: shown while there is an answer to rate, rates that answer's event id.
        await until(lambda: w.feedback_row.isVisible(), "the like/dislike row")
        assert not w.like_button.isChecked()
        assert not w.dislike_button.isChecked()
        greeting_id = max(session.agent_responses)  # type: ignore[attr-defined]
        screenshot(w, "connected-text")
        w.like_button.click()
        await session.wait_for(lambda s: bool(s.feedback))  # type: ignore[attr-defined]
        assert session.feedback == [("like", greeting_id)]  # type: ignore[attr-defined]
        # The rating shows, and can be changed or cleared (the newest official client).
        assert w.feedback_row.isVisible()
        assert w.like_button.isChecked()
        assert not w.dislike_button.isChecked()
        assert w.feedback_label.text() == "You liked the latest answer."
        w.dislike_button.click()
        assert w.dislike_button.isChecked()
        assert not w.like_button.isChecked()
        w.dislike_button.click()  # the chosen button again: no rating
        await session.wait_for(lambda s: len(s.feedback) == 3)  # type: ignore[attr-defined]
        assert session.feedback[1:] == [("dislike", greeting_id), (None, greeting_id)]  # type: ignore[attr-defined]
        assert not w.like_button.isChecked()
        assert not w.dislike_button.isChecked()
        assert w.feedback_label.text() == "How was that response?"
        assert w.feedback_row.isVisible()

        # Typing tells the agent the user is busy (throttled).
        w.message_input.setFocus()
        QTest.keyClicks(w.message_input, "hello")
        await session.wait_for(lambda s: s.user_activity_count >= 1)  # type: ignore[attr-defined]
        assert session.user_activity_count <= 2  # type: ignore[attr-defined]
        assert w.send_message_button.isEnabled()

        # Enter sends the message and clears the box; the reply streams in.
        QTest.keyClick(w.message_input, Qt.Key.Key_Return)
        assert w.message_input.text() == ""
        await until(lambda: "Agent: Hello!" in w.transcript_view.toPlainText(), "the reply")
        assert "You: hello" in w.transcript_view.toPlainText()
        assert session.user_messages[-1] == "hello"  # type: ignore[attr-defined]

        # Context: goes to the agent, clears the box, gets no reply of its own.
        w.message_input.setPlainText("The user is in a quiet office.")
        w.send_context_button.click()
        assert w.message_input.text() == ""
        await session.wait_for(lambda s: bool(s.contextual_updates))  # type: ignore[attr-defined]
        assert session.contextual_updates == ["The user is in a quiet office."]  # type: ignore[attr-defined]

        # A tool call and its result are in the transcript.
        w.message_input.setPlainText("what's my battery?")
        w.send_message_button.click()
        await until(
            lambda: any(
                line.speaker is Speaker.TOOL and not line.tentative
                for line in shell.controller.transcript.lines
            ),
            "the tool line",
        )
        assert "Tool: getBatteryLevel()" in w.transcript_view.toPlainText()
        screenshot(w, "transcript-with-tool")

        # Round-trip latency from the pings.
        await until(lambda: w.latency_label.text().startswith("Latency "), "latency")

        w.end_button.click()
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")
        assert w.start_button.isEnabled()
        assert not w.end_button.isEnabled()
        assert "You ended the conversation." in w.transcript_view.toPlainText()
        assert not w.banner.isVisible()
        screenshot(w, "disconnected")

    gui.run(flow())


def test_shift_enter_is_a_new_line_and_blank_text_is_not_sent(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        QTest.keyClicks(w.message_input, "line one")
        QTest.keyClick(w.message_input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
        QTest.keyClicks(w.message_input, "line two")
        assert w.message_input.text() == "line one\nline two"
        w.message_input.setPlainText("   ")
        assert not w.send_message_button.isEnabled()
        QTest.keyClick(w.message_input, Qt.Key.Key_Return)
        session = agent_session(gui)
        assert session.user_messages == []  # type: ignore[attr-defined]

    gui.run(flow())


def test_shortcuts_start_mute_focus_and_end(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window
    w.activateWindow()
    assert QTest.qWaitForWindowActive(w, 2000)

    async def flow() -> None:
        QTest.keySequence(w, "Ctrl+Return")
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        QTest.keySequence(w, "Ctrl+M")
        assert w.mute_button.isChecked()
        assert shell.controller.conversation is not None
        assert shell.controller.conversation.is_mic_muted
        assert w.mute_button.text() == "Unmute"
        QTest.keySequence(w, "Ctrl+M")
        assert not shell.controller.conversation.is_mic_muted
        QTest.keySequence(w, "Ctrl+L")
        assert w.message_input.hasFocus() or w.focusWidget() is w.message_input
        QTest.keySequence(w, "Ctrl+E")
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")

    gui.run(flow())


def test_first_run_offers_the_demo_labelled_as_local(gui: Gui) -> None:
    shell = gui.open("--text-only")
    w = shell.window
    assert w.pages.currentWidget().objectName() == "welcomePage"
    welcome = w.findChild(QLabel, "welcomeText")
    assert welcome is not None
    assert "runs on this computer" in welcome.text()
    assert w.connect_button.isVisible()
    assert w.demo_button.isVisible()
    screenshot(w, "first-run")

    async def flow() -> None:
        w.demo_button.click()
        assert w.pages.currentWidget().objectName() == "conversationPage"
        assert "Local demo agent" in w.agent_label.text()
        await until(lambda: w.status_label.text() == "Connected", "Connected")

    gui.run(flow())


def test_a_bad_api_key_is_a_banner_and_the_window_goes_on(gui: Gui) -> None:
    server = LocalAgentServer(AgentConfig(api_key="sk_right_000000000000"))

    async def flow() -> None:
        await server.start()
        try:
            shell = gui.open(
                "--server-url",
                server.http_url,
                "--agent-id",
                "private",
                "--api-key",
                "sk_wrong_000000000000",
                "--text-only",
            )
            w = shell.window
            assert "Agent private" in w.agent_label.text()
            w.start_button.click()
            await until(lambda: w.banner.isVisible(), "the banner")
            assert "API key was not accepted" in w.banner.text()
            assert "sk_wrong" not in w.banner.text() + w.transcript_view.toPlainText()
            assert w.status_label.text() == "Disconnected"
            assert w.start_button.isEnabled()
            screenshot(w, "error-bad-key")
        finally:
            await server.stop()

    gui.run(flow())


@pytest.mark.parametrize(
    ("fault", "sentence"),
    [
        ("drop", "The connection to the agent was lost"),
        ("policy", "The agent refused the conversation"),
        ("error_event", "The language model was slow."),
    ],
)
def test_faults_show_a_banner_and_starting_again_works(gui: Gui, fault: str, sentence: str) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        session = agent_session(gui)
        if fault == "drop":
            session.drop()  # type: ignore[attr-defined]
        elif fault == "policy":
            await session.close(1008, "Agent is not available")  # type: ignore[attr-defined]
        else:
            await session.send(  # type: ignore[attr-defined]
                {
                    "type": "error",
                    "error_event": {
                        "code": 1002,
                        "message": "The language model was slow",
                        "error_type": "llm_timeout",
                    },
                }
            )
        await until(lambda: sentence in w.banner.text(), f"the banner saying {sentence!r}")
        if fault == "error_event":
            # An error event alone does not end the call: the server closes it if it must.
            assert w.status_label.text() == "Connected"
            w.message_input.setPlainText("hello")
            w.send_message_button.click()
            await until(lambda: "Agent: Hello!" in w.transcript_view.toPlainText(), "a reply")
            assert w.status_label.text() == "Connected"
            await session.close(1002, "LLM timeout")  # type: ignore[attr-defined]
            await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")
            assert sentence in w.banner.text()
            # The server's close after the error: its details carry the error's sentence.
            assert w.transcript_view.toPlainText().endswith(f"Error: {sentence}")
        else:
            await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")
            w.start_button.click()
            await until(lambda: w.status_label.text() == "Connected", "connected again")
            assert not w.banner.isVisible(), "a new start clears the old banner"

    gui.run(flow())


def test_an_unreachable_server_is_a_banner(gui: Gui) -> None:
    shell = gui.open("--server-url", "http://127.0.0.1:9", "--agent-id", "a", "--text-only")
    w = shell.window

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: w.banner.isVisible(), "the banner")
        assert w.status_label.text() == "Disconnected"
        assert w.start_button.isEnabled()

    gui.run(flow())


def test_the_flash_tool_shows_a_white_overlay_and_removes_it(gui: Gui) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: w.status_label.text() == "Connected", "Connected")
        w.message_input.setPlainText("flash the screen")
        w.send_message_button.click()
        await until(lambda: bool(shell.flash.overlays), "the overlay")
        overlay = shell.flash.overlays[0]
        assert overlay.isVisible()
        assert overlay.geometry() == gui.app.primaryScreen().geometry()
        await until(lambda: not shell.flash.overlays, "the overlay to go")
        await until(
            lambda: "white overlay on 1 screen" in w.transcript_view.toPlainText(), "the tool line"
        )

    gui.run(flow())


def test_settings_persist_and_the_key_stays_out_of_the_file(
    gui: Gui, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring

    from voicedesk import config
    from voicedesk.ui.settings_dialog import SettingsDialog

    saved: dict[str, str] = {}
    monkeypatch.setattr(keyring, "set_password", lambda s, u, p: saved.__setitem__(u, p))
    monkeypatch.setattr(keyring, "get_password", lambda s, u: saved.get(u))

    shell = gui.open("--text-only")

    def fill(dialog: SettingsDialog) -> None:
        dialog.agent_id.setText("agent_abc123")
        dialog.api_key.setText("sk_secret_1234567890")
        dialog.server.setCurrentText("eu")
        dialog.echo.setChecked(False)
        screenshot(dialog, "settings")
        dialog.accept()

    monkeypatch.setattr(SettingsDialog, "exec", lambda self: (fill(self), 1)[1])
    shell.window.connect_button.click()
    text = config.settings_path().read_text()
    assert "agent_abc123" in text
    assert "sk_secret" not in text
    assert saved == {config.KEYRING_USER: "sk_secret_1234567890"}
    assert config.load_settings().echo_cancellation is False
    plan = shell.controller.plan
    assert not plan.demo
    assert plan.options.agent_id == "agent_abc123"
    assert plan.options.api_key == "sk_secret_1234567890"
    assert plan.options.server_url == "https://api.eu.residency.elevenlabs.io"
    assert shell.window.pages.currentWidget().objectName() == "conversationPage"
    assert "agent_abc123" in shell.window.agent_label.text()


def test_settings_refuse_a_plain_http_server_with_a_sentence(
    gui: Gui, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicedesk.ui.settings_dialog import SettingsDialog

    shell = gui.open("--text-only")
    errors: list[str] = []
    attempts = iter([1, 0])

    def run(self: SettingsDialog) -> int:
        self.agent_id.setText("a")
        self.server.setCurrentText("http://example.com")
        if self.error.text():
            errors.append(self.error.text())
        return next(attempts)

    monkeypatch.setattr(SettingsDialog, "exec", run)
    shell.open_settings()
    assert errors
    assert "not encrypted" in errors[0]
    assert Settings().agent_id is None


def test_self_test_command_passes_in_text(tmp_path: object) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [sys.executable, "-m", "voicedesk", "--self-test", "--text-only"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "voicedesk self-test passed" in result.stdout
    assert "getBatteryLevel answered" in result.stdout
