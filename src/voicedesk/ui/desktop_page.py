"""Settings' Desktop page: what closing the window does, the two global shortcuts, and
whether global shortcuts (and the tray) work on this desktop. It only collects
:class:`DesktopChoices`; the shell checks and applies them."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QKeySequenceEdit,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from voicedesk.config import Settings


@dataclass(frozen=True, slots=True)
class DesktopChoices:
    close_quits: bool
    shortcut_start_end: str  # a Qt key sequence, portable text; "": no shortcut
    shortcut_mute: str

    @classmethod
    def of(cls, settings: Settings) -> DesktopChoices:
        return cls(settings.close_quits, settings.shortcut_start_end, settings.shortcut_mute)

    def store(self, settings: Settings) -> None:
        settings.close_quits = self.close_quits
        settings.shortcut_start_end = self.shortcut_start_end
        settings.shortcut_mute = self.shortcut_mute


class DesktopPage(QWidget):
    """``shortcuts_sentence``: whether global shortcuts work here (and keys another app
    holds); ``has_tray``: whether this desktop shows a tray icon."""

    def __init__(
        self,
        choices: DesktopChoices,
        *,
        shortcuts_sentence: str,
        has_tray: bool,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("desktopPage")
        layout = QVBoxLayout(self)
        grid = QFormLayout()
        layout.addLayout(grid)

        self.close_quits = QCheckBox("Closing the window quits")
        self.close_quits.setObjectName("closeQuitsCheck")
        self.close_quits.setChecked(choices.close_quits)
        self.close_quits.setAccessibleDescription(
            "Off: closing the window during a conversation keeps it running in the tray"
        )
        grid.addRow("", self.close_quits)
        tray = QLabel(
            "Off: closing the window during a conversation keeps it running in the tray "
            "(Show or Quit from the tray icon). With no conversation, closing quits."
            if has_tray
            else "This desktop shows no tray icon, so closing the window always quits."
        )
        tray.setObjectName("trayAvailabilityLabel")
        tray.setWordWrap(True)
        grid.addRow("", tray)

        self.start_end_key = self._key_edit(
            "startEndShortcutEdit", choices.shortcut_start_end, "Start or end a conversation"
        )
        grid.addRow("Start / end (anywhere)", self.start_end_key)
        self.mute_key = self._key_edit(
            "muteShortcutEdit", choices.shortcut_mute, "Mute or unmute the microphone"
        )
        grid.addRow("Mute (anywhere)", self.mute_key)

        self.shortcuts_label = QLabel(shortcuts_sentence)
        self.shortcuts_label.setObjectName("globalShortcutsLabel")
        self.shortcuts_label.setWordWrap(True)
        layout.addWidget(self.shortcuts_label)
        hint = QLabel(
            "Global shortcuts work while another app has the focus. Clear a field to have none."
        )
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addStretch(1)

    @staticmethod
    def _key_edit(name: str, keys: str, description: str) -> QKeySequenceEdit:
        edit = QKeySequenceEdit(QKeySequence(keys))
        edit.setObjectName(name)
        edit.setAccessibleName(description)
        edit.setToolTip(description)
        edit.setMaximumSequenceLength(1)
        edit.setClearButtonEnabled(True)
        return edit

    def choices(self) -> DesktopChoices:
        portable = QKeySequence.SequenceFormat.PortableText
        return DesktopChoices(
            close_quits=self.close_quits.isChecked(),
            shortcut_start_end=self.start_end_key.keySequence().toString(portable),
            shortcut_mute=self.mute_key.keySequence().toString(portable),
        )
