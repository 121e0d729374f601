"""The window keeps each conversation in the history, and History shows it: search,
read, export as Markdown and JSON, delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtTest import QTest

from tests.gui.conftest import Gui, screenshot, until
from voicedesk.config import history_dir
from voicedesk.ui.history_dialog import HistoryDialog

pytestmark = [pytest.mark.gui]


def test_a_conversation_in_the_window_is_kept_and_found_in_history(
    gui: Gui, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: "What can I help you with?" in w.transcript_view.toPlainText(), "hi")
        w.message_input.setPlainText("what's my battery?")
        w.send_message_button.click()
        await until(lambda: "getBatteryLevel" in w.transcript_view.toPlainText(), "the tool")
        w.end_button.click()
        await until(lambda: shell.controller.status == "disconnected", "ended")

    gui.run(flow())

    saved: list[str] = []
    dialog = HistoryDialog(
        history_dir(),
        parent=w,
        save_picker=lambda name, _filter: str(tmp_path / name),
        confirm=lambda summary: saved.append(summary) is None,
    )
    assert dialog.list.count() == 1
    assert "demo" in dialog.list.item(0).text()
    text = dialog.view.toPlainText()
    assert "You: what's my battery?" in text
    assert "getBatteryLevel" in text
    assert "You ended the conversation." in text
    dialog.show()
    screenshot(dialog, "history")

    QTest.keyClicks(dialog.search, "zebra")
    assert dialog.list.count() == 0
    assert dialog.status.text() == "No conversation matches the search."
    assert not dialog.delete.isEnabled()
    dialog.search.clear()
    QTest.keyClicks(dialog.search, "battery")
    assert dialog.list.count() == 1

    entry = dialog.selected
    assert entry is not None
    dialog.export_md.click()
    assert (tmp_path / f"{entry.id}.md").read_text().startswith("# Conversation conv_local_")
    dialog.export_json.click()
    assert json.loads((tmp_path / f"{entry.id}.json").read_text())["agent_id"] == "demo"
    assert dialog.status.text() == f"Exported to {tmp_path / f'{entry.id}.json'}."

    dialog.delete.click()
    assert len(saved) == 1
    assert dialog.list.count() == 0
    assert not list(history_dir().glob("*.jsonl"))
    dialog.close()


def test_history_opens_from_the_window_by_its_shortcut(
    gui: Gui, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = gui.open("--demo", "--text-only")
    opened: list[HistoryDialog] = []

    def fake_exec(dialog: HistoryDialog) -> int:
        opened.append(dialog)
        return 0

    monkeypatch.setattr(HistoryDialog, "exec", fake_exec)
    w = shell.window
    assert w.history_button.accessibleName() or w.history_button.toolTip()
    w.show()
    w.activateWindow()
    QTest.qWaitForWindowActive(w, 2000)
    QTest.keySequence(w, "Ctrl+H")
    w.history_button.click()
    assert len(opened) == 2
    assert opened[0].status.text() == "No conversation yet: each one is kept here as it happens."
