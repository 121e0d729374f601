"""The ``flashScreen`` tool's surface in the window: a white overlay on every screen."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget


class OverlayFlash:
    """Implements :class:`voicedesk.tools.flash.FlashSurface` with frameless white
    windows over each screen, shown for the flash's duration and always removed."""

    def __init__(self) -> None:
        self.overlays: list[QWidget] = []

    async def flash(self, duration_ms: int) -> str:
        screens = QGuiApplication.screens()
        for screen in screens:
            overlay = QWidget(
                None,
                Qt.WindowType.FramelessWindowHint
                | Qt.WindowType.WindowStaysOnTopHint
                | Qt.WindowType.Tool
                | Qt.WindowType.WindowTransparentForInput,
            )
            overlay.setObjectName("flashOverlay")
            overlay.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
            overlay.setStyleSheet("background: white;")
            overlay.setWindowOpacity(0.85)
            overlay.setGeometry(screen.geometry())
            overlay.show()
            self.overlays.append(overlay)
        try:
            await asyncio.sleep(duration_ms / 1000.0)
        finally:
            overlays, self.overlays = self.overlays, []
            for overlay in overlays:
                overlay.close()
                overlay.deleteLater()
        count = len(screens)
        return f"a white overlay on {count} screen{'s' if count != 1 else ''}"
