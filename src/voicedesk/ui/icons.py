"""The window's icons: one SVG set (24 px grid, strokes in ``currentColor``), made once
per colour into a :class:`QIcon` whose engine renders each size and device pixel ratio
from the vector (sharp on HiDPI). The same drawings are files in ``resources/icons/``
(written by ``resources/make_icons.py``; a test keeps them equal to these)."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QIcon, QIconEngine, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

_HEAD = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
    'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
)

SVGS: dict[str, str] = {
    "mic": '<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5 11a7 7 0 0 0 14 0"/>'
    '<path d="M12 18v3"/>',
    "mic-off": '<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5 11a7 7 0 0 0 14 0"/>'
    '<path d="M12 18v3"/><path d="M3 3l18 18"/>',
    "send": '<path d="M4 12l16-8-6 16-2-7z"/>',
    "context": '<path d="M4 5h16v10H9l-5 4z"/><path d="M8 9h8"/>',
    "settings": '<circle cx="12" cy="12" r="3"/><path d="M12 2v3M12 19v3M2 12h3M19 12h3'
    'M4.9 4.9l2.1 2.1M17 17l2.1 2.1M4.9 19.1L7 17M17 7l2.1-2.1"/>',
    "history": '<path d="M3 12a9 9 0 1 0 3-6.7"/><path d="M3 4v5h5"/><path d="M12 7v5l3 2"/>',
    "compact": '<rect x="3" y="3" width="18" height="18" rx="3"/><rect x="12" y="12" '
    'width="6" height="6" rx="1"/>',
    "expand": '<path d="M4 9V4h5M20 15v5h-5M4 4l6 6M20 20l-6-6"/>',
    "thumb-up": '<path d="M7 11v9H4v-9z"/><path d="M7 11l4-8a2 2 0 0 1 3 2l-1 5h6a2 2 0 0 1 '
    '2 2l-2 7a2 2 0 0 1-2 1H7"/>',
    "thumb-down": '<path d="M7 13V4H4v9z"/><path d="M7 13l4 8a2 2 0 0 0 3-2l-1-5h6a2 2 0 0 0 '
    '2-2l-2-7a2 2 0 0 0-2-1H7"/>',
    "copy": '<rect x="8" y="8" width="12" height="12" rx="2"/><path d="M16 8V5a1 1 0 0 0-1-1H5'
    'a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h3"/>',
    "down": '<path d="M12 5v14M6 13l6 6 6-6"/>',
    "volume": '<path d="M4 9h4l5-4v14l-5-4H4z"/><path d="M17 9a4 4 0 0 1 0 6"/>',
    "keyboard": '<rect x="2" y="6" width="20" height="12" rx="2"/><path d="M6 10h.01M10 10h.01'
    'M14 10h.01M18 10h.01M7 14h10"/>',
    "tool": '<path d="M14 6a4 4 0 0 0 5 5l-9 9-3-3 9-9a4 4 0 0 1-2-2z"/>',
    "devices": '<rect x="3" y="4" width="8" height="12" rx="2"/><path d="M15 8h6M15 12h6'
    'M15 16h6"/><path d="M7 20h0"/>',
}


def svg(name: str, color: str = "#000000") -> str:
    return (_HEAD + SVGS[name] + "</svg>").replace("currentColor", color)


class _SvgEngine(QIconEngine):
    """Renders the vector at whatever size and pixel ratio Qt asks for (a disabled
    icon: its own colour when given, else the normal one faded)."""

    def __init__(self, data: bytes, disabled: bytes | None = None) -> None:
        super().__init__()
        self._data = data
        self._disabled_data = disabled
        self._renderer = QSvgRenderer(QByteArray(data))
        self._disabled = QSvgRenderer(QByteArray(disabled)) if disabled else None

    def paint(self, painter: QPainter, rect: object, mode: QIcon.Mode, state: QIcon.State) -> None:
        renderer = self._renderer
        if mode == QIcon.Mode.Disabled:
            if self._disabled is not None:
                renderer = self._disabled
            else:
                painter.setOpacity(0.45)
        renderer.render(painter, QRectF(rect))  # type: ignore[call-overload]

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.paint(painter, pixmap.rect(), mode, state)
        painter.end()
        return pixmap

    def clone(self) -> QIconEngine:
        return _SvgEngine(self._data, self._disabled_data)


@cache
def icon(name: str, color: str, disabled: str | None = None) -> QIcon:
    """The icon ``name`` in ``color`` (``#RRGGBB``; ``disabled``: its colour on a
    disabled control), drawn from the vector at any size."""
    off = svg(name, disabled).encode() if disabled else None
    return QIcon(_SvgEngine(svg(name, color).encode(), off))
