"""The tray / menu-bar icon: the conversation's status at a glance, and Start/End, Mute,
Show, Compact mode and Quit without the window.

The menu's actions work whether or not the desktop shows the icon
(:attr:`TrayIcon.available`): the shell only shows it where a system tray exists. When a
conversation ends or fails while the window is hidden or minimised, the sentence the
window would have shown is sent as a notification (``notifier``, by default the tray's
``showMessage``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractButton, QMenu, QSystemTrayIcon, QWidget

from voicedesk.protocol.errors import DisconnectDetails
from voicedesk.ui.controller import ConversationController

logger = logging.getLogger(__name__)

#: The tray's four looks, and what each says.
TRAY_STATES = ("idle", "connecting", "connected", "error")
TRAY_WORDS = {
    "idle": "No conversation",
    "connecting": "Connecting…",
    "connected": "In a conversation",
    "error": "The last conversation failed",
}
TRAY_COLORS = {
    "idle": "#9CA3AF",
    "connecting": "#F59E0B",
    "connected": "#10B981",
    "error": "#EF4444",
}
ICON_PATH = Path(__file__).with_name("icon.png")

#: ``notifier(title, sentence, is_error)``: shows a desktop notification.
Notifier = Callable[[str, str, bool], None]


def tray_state(status: str, *, starting: bool, failed: bool) -> str:
    """The tray's look for the controller's ``status`` (``"connected"``, …); ``failed``:
    the last conversation ended in an error (shown until the next one starts)."""
    if status in ("connected", "disconnecting"):
        return "connected"
    if status == "connecting" or starting:
        return "connecting"
    return "error" if failed else "idle"


def tray_icon(state: str, size: int = 64) -> QIcon:
    """The app icon with a dot in the state's colour in its lower right corner."""
    base = QPixmap(str(ICON_PATH)).scaled(
        size,
        size,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    if base.isNull():
        base = QPixmap(size, size)
        base.fill(Qt.GlobalColor.transparent)
    painter = QPainter(base)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    radius = size * 0.22
    centre = QPointF(size - radius - 1, size - radius - 1)
    painter.setPen(QColor("white"))
    painter.setBrush(QColor(TRAY_COLORS[state]))
    painter.drawEllipse(centre, radius, radius)
    painter.end()
    return QIcon(base)


class TrayIcon(QObject):
    """The tray icon and its menu for one window.

    ``quitRequested``: the user chose Quit (the shell ends the conversation cleanly).
    ``compactRequested(on)``: the Compact mode entry was switched."""

    quitRequested = Signal()
    compactRequested = Signal(bool)

    def __init__(
        self,
        controller: ConversationController,
        window: QWidget,
        *,
        available: bool,
        notifier: Notifier | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.window = window
        self.available = available
        self.state = "idle"
        self._failed = False
        self._icons = {state: tray_icon(state) for state in TRAY_STATES}
        self.icon = QSystemTrayIcon(self._icons["idle"], self)
        self.notifier: Notifier = notifier or self._show_message

        self.menu = QMenu(window)
        self.menu.setObjectName("trayMenu")
        self.status_action = QAction(TRAY_WORDS["idle"], self)
        self.status_action.setObjectName("trayStatus")
        self.status_action.setEnabled(False)
        self.start_end_action = QAction("Start conversation", self)
        self.start_end_action.setObjectName("trayStartEnd")
        self.start_end_action.triggered.connect(self.start_or_end)
        self.mute_action = QAction("Mute", self)
        self.mute_action.setObjectName("trayMute")
        self.mute_action.setCheckable(True)
        self.mute_action.triggered.connect(self._mute_chosen)
        self.show_action = QAction("Show voicedesk", self)
        self.show_action.setObjectName("trayShow")
        self.show_action.triggered.connect(self.show_window)
        self.compact_action = QAction("Compact mode", self)
        self.compact_action.setObjectName("trayCompact")
        self.compact_action.setCheckable(True)
        self.compact_action.triggered.connect(self._compact_chosen)
        self.quit_action = QAction("Quit", self)
        self.quit_action.setObjectName("trayQuit")
        self.quit_action.triggered.connect(self.quitRequested.emit)
        self.menu.addAction(self.status_action)
        self.menu.addSeparator()
        for action in (self.start_end_action, self.mute_action, self.show_action):
            self.menu.addAction(action)
        self.menu.addAction(self.compact_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.menu.aboutToShow.connect(self._refresh)

        controller.statusChanged.connect(self._refresh)
        controller.startingChanged.connect(self._refresh)
        controller.ended.connect(self._ended)
        mute = self.mute_button()
        if mute is not None:
            mute.toggled.connect(self.mute_action.setChecked)
            self.mute_action.setChecked(mute.isChecked())
        self._refresh()

    # ------------------------------------------------------------------ visibility

    def show(self) -> None:
        """Put the icon in the tray (only where one exists)."""
        if self.available:
            self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    # ------------------------------------------------------------------ actions

    def start_or_end(self) -> None:
        """Start a conversation, or end the one running (Start/End, the global key)."""
        if self.controller.can_end or self.controller.status == "connecting":
            self.controller.end()
        elif self.controller.can_start:
            self.controller.start()

    def toggle_mute(self) -> None:
        """Mute or unmute through the window's mute button, so both stay in step (not
        while the window offers no mute: a text-only conversation)."""
        mute = self.mute_button()
        if mute is not None:
            if mute.isEnabled():
                mute.toggle()
        else:
            self.controller.set_muted(not self.mute_action.isChecked())

    def show_window(self) -> None:
        window = self.window
        if window.isMinimized():
            window.showNormal()
        else:
            window.show()
        window.raise_()
        window.activateWindow()

    def set_compact_checked(self, on: bool) -> None:
        self.compact_action.setChecked(on)

    def mute_button(self) -> QAbstractButton | None:
        return self.window.findChild(QAbstractButton, "muteButton")

    def _mute_chosen(self, checked: bool) -> None:
        mute = self.mute_button()
        if mute is not None:
            mute.setChecked(checked)
        else:
            self.controller.set_muted(checked)

    def _compact_chosen(self, checked: bool) -> None:
        self.compactRequested.emit(checked)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason is QSystemTrayIcon.ActivationReason.Trigger:
            if self.window.isVisible() and not self.window.isMinimized():
                self.window.hide()
            else:
                self.show_window()

    # ------------------------------------------------------------------ state

    def _refresh(self, *_: object) -> None:
        c = self.controller
        if c.status in ("connecting", "connected") or c.is_starting:
            self._failed = False
        state = tray_state(c.status, starting=c.is_starting, failed=self._failed)
        self.state = state
        self.icon.setIcon(self._icons[state])
        self.icon.setToolTip(f"voicedesk: {TRAY_WORDS[state]}")
        self.status_action.setText(TRAY_WORDS[state])
        running = c.can_end or c.status == "connecting"
        self.start_end_action.setText("End conversation" if running else "Start conversation")
        self.start_end_action.setEnabled(running or c.can_start)
        mute = self.mute_button()
        if mute is not None:
            self.mute_action.setEnabled(mute.isEnabled())
            self.mute_action.setChecked(mute.isChecked())

    def _ended(self, details: DisconnectDetails) -> None:
        self._failed = details.is_error
        self._refresh()
        hidden = not self.window.isVisible() or self.window.isMinimized()
        if hidden:
            title = "Conversation failed" if details.is_error else "Conversation ended"
            self.notifier(title, details.message, details.is_error)

    def _show_message(self, title: str, sentence: str, is_error: bool) -> None:
        if not self.available:
            logger.info("notification (no system tray): %s: %s", title, sentence)
            return
        kind = (
            QSystemTrayIcon.MessageIcon.Critical
            if is_error
            else QSystemTrayIcon.MessageIcon.Information
        )
        self.icon.showMessage(title, sentence, kind, 8000)
