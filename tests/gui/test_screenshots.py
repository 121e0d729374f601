"""The README's gallery: every state of the window in both themes, written to
``docs/screenshots/<theme>/<state>.png`` by real conversations with the local demo
agent (voice through the PulseAudio null sinks). Each picture is checked first: the
state it claims is the one on screen, and no API key is anywhere in the window."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit, QPlainTextEdit, QWidget

from tests.audio.pulse import play_into, tone
from tests.gui.conftest import Gui, until
from voicedesk.config import Settings
from voicedesk.launch import form_from_settings
from voicedesk.localagent import AgentConfig, LocalAgentServer
from voicedesk.ui.settings_dialog import SettingsDialog

pytestmark = [pytest.mark.gui, pytest.mark.timeout(180, method="thread")]

GALLERY = Path(os.environ.get("VOICEDESK_GALLERY", "docs/screenshots"))
THEMES = ("light", "dark")
SECRET = "sk_gallery_secret_0000000000"


def _texts(widget: QWidget) -> str:
    parts = [widget.windowTitle(), widget.toolTip()]
    for child in widget.findChildren(QWidget):
        parts.append(child.toolTip())
        parts.append(child.accessibleName())
        parts.append(child.accessibleDescription())
        if isinstance(child, (QLabel, QLineEdit, QAbstractButton)):
            parts.append(child.text())
        elif isinstance(child, QPlainTextEdit):
            parts.append(child.toPlainText())
    return "\n".join(parts)


def shoot(widget: QWidget, theme: str, state: str) -> Path:
    """Save the picture of ``widget`` once no secret is anywhere in it."""
    assert SECRET not in _texts(widget), f"the API key would be in the {state} picture"
    folder = GALLERY / theme
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{state}.png"
    assert widget.grab().save(str(path)), f"could not write {path}"
    return path


@pytest.mark.parametrize("theme", THEMES)
def test_first_run_connecting_and_error(gui: Gui, theme: str) -> None:
    settings = Settings(theme=theme)

    silence = asyncio.Event()

    async def stalled(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await silence.wait()  # accepts the connection and never answers
        writer.close()

    async def flow() -> None:
        first = gui.open("--text-only", settings=settings)
        assert first.window.pages.currentWidget().objectName() == "welcomePage"
        shoot(first.window, theme, "first-run")
        await first.shutdown()
        first.window.close()
        first.window.deleteLater()

        quiet = await asyncio.start_server(stalled, "127.0.0.1", 0)
        port = quiet.sockets[0].getsockname()[1]
        try:
            shell = gui.open(
                "--server-url", f"ws://127.0.0.1:{port}", "--agent-id", "agent_gallery",
                "--text-only", settings=settings,
            )  # fmt: skip
            w = shell.window
            w.start_button.click()
            await until(lambda: w.orb.state == "connecting", "connecting")
            await asyncio.sleep(0.4)
            assert w.orb.state == "connecting"
            shoot(w, theme, "connecting")
            await shell.shutdown()
            w.close()
            w.deleteLater()
        finally:
            silence.set()
            quiet.close()
            await quiet.wait_closed()

        server = LocalAgentServer(AgentConfig(api_key="sk_right_0000000000000"))
        await server.start()
        try:
            shell = gui.open(
                "--server-url", server.http_url, "--agent-id", "private",
                "--api-key", SECRET, "--text-only", settings=settings,
            )  # fmt: skip
            w = shell.window
            w.start_button.click()
            await until(lambda: w.banner.isVisible(), "the error banner")
            assert "API key was not accepted" in w.banner.text()
            shoot(w, theme, "error")
        finally:
            await server.stop()

    gui.run(flow(), timeout=60)


@pytest.mark.usefixtures("pulse")
@pytest.mark.parametrize("theme", THEMES)
def test_a_voice_conversation_in_pictures(gui: Gui, theme: str) -> None:
    shell = gui.open("--demo", "--no-aec", settings=Settings(theme=theme))
    w = shell.window

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: w.orb.state == "speaking", "the greeting spoken", 20)
        await asyncio.sleep(0.5)
        assert w.orb.state == "speaking"
        shoot(w, theme, "speaking")
        await until(lambda: w.orb.state == "listening", "listening", 60)
        player = play_into(tone(220.0, 0.6, level=0.05))  # a murmur: the orb moves
        await asyncio.sleep(0.4)
        shoot(w, theme, "listening")
        await asyncio.to_thread(player.wait, 5)
        await until(lambda: w.orb.state == "listening", "listening again", 30)

        w.message_input.setPlainText("what's my battery?")
        w.send_message_button.click()
        assert w.orb.state == "thinking"
        shoot(w, theme, "thinking")
        await until(
            lambda: any(r.who == "tool" for r in w.transcript_view.rows), "the tool chip", 20
        )
        chip = next(r for r in w.transcript_view.rows if r.who == "tool")
        await until(lambda: "·" in chip.chip.text() and "running" not in chip.chip.text(), "done")
        chip.chip.click()  # expanded: its parameters and result
        await until(lambda: w.orb.state == "listening", "the reply heard", 60)
        shoot(w, theme, "tool-call")

        w.set_compact(True)
        await asyncio.sleep(0.3)
        shoot(w, theme, "compact")
        w.set_compact(False)

        w.message_input.setPlainText("send an email to Bob")
        w.send_message_button.click()
        await until(lambda: bool(w.approval_cards), "the approval card", 20)
        await asyncio.sleep(0.3)
        shoot(w, theme, "mcp-approval")
        next(iter(w.approval_cards.values())).deny_button.click()
        await until(lambda: not w.approval_cards, "the card closed")

        dialog = SettingsDialog(form_from_settings(shell.settings), has_saved_key=True, parent=w)
        dialog.tabs.setCurrentWidget(dialog.findChild(QWidget, "audioPage"))
        dialog.show()
        await asyncio.sleep(0.2)
        assert dialog.api_key.text() == ""
        shoot(dialog, theme, "settings")
        dialog.reject()
        dialog.deleteLater()
        w.end_button.click()
        await until(lambda: w.status_label.text() == "Disconnected", "Disconnected")

    gui.run(flow(), timeout=170)
