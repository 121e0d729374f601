"""A client tool set to Ask: the window shows a card (Allow once / Always / Deny), and
Always is remembered for that agent and tool."""

from __future__ import annotations

import pytest

from tests.gui.conftest import Gui, screenshot, until
from voicedesk import config
from voicedesk.tools import permissions as p

pytestmark = [pytest.mark.gui]


def test_a_tool_set_to_ask_shows_a_card_and_always_is_remembered(gui: Gui) -> None:
    settings = config.load_settings()
    p.set_permission(settings, "demo", "getBatteryLevel", p.Permission.ASK)
    config.save_settings(settings)
    shell = gui.open("--demo", "--text-only")
    w = shell.window

    async def flow() -> None:
        w.start_button.click()
        await until(lambda: shell.controller.status == "connected", "connected")
        w.message_input.setPlainText("what's my battery?")
        w.send_message_button.click()
        await until(lambda: bool(w.approval_cards), "the permission card")
        (card,) = w.approval_cards.values()
        assert card.objectName() == "toolPermissionCard"
        assert "wants to run getBatteryLevel on this computer" in card.question.text()
        assert card.approve_button.text() == "Allow once"
        screenshot(w, "tool-permission-ask")
        card.always_button.click()
        await until(lambda: not w.approval_cards, "the card closed")
        await until(lambda: "getBatteryLevel" in w.transcript_view.toPlainText(), "the tool ran")
        saved = config.load_settings().tool_permissions
        assert p.permission_for(saved, "demo", "getBatteryLevel") is p.Permission.ALLOW

    gui.run(flow())


def test_settings_set_each_tools_permission_for_the_agent(
    gui: Gui, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicedesk.ui.settings_dialog import SettingsDialog

    shell = gui.open("--demo")

    def fill(dialog: SettingsDialog) -> int:
        combos = dialog.tool_permissions
        assert set(combos) == {"getBatteryLevel", "changeBrightness", "flashScreen"}
        assert all(c.currentData() == "allow" for c in combos.values())
        combos["flashScreen"].setCurrentIndex(combos["flashScreen"].findData("never"))
        combos["changeBrightness"].setCurrentIndex(combos["changeBrightness"].findData("ask"))
        dialog.tabs.setCurrentIndex(dialog.tabs.count() - 1)
        dialog.show()
        screenshot(dialog, "settings-tools")
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", fill)
    shell.open_settings()
    saved = config.load_settings().tool_permissions
    assert saved == {"demo": {"flashScreen": "never", "changeBrightness": "ask"}}
