"""Render ``voicedesk.svg`` into every icon file the platforms need.

    python resources/make_icons.py

Writes, next to this script: ``voicedesk.png`` (1024 px), ``voicedesk.ico`` (Windows:
16-256 px), ``voicedesk.icns`` (macOS: 16-1024 px), and the window icon the app
loads, ``src/voicedesk/ui/icon.png`` (256 px). ICO and ICNS are written here (PNG
entries in the containers) so no Qt image plugin or macOS tool is needed.

Also ``icons/<name>.svg``: the window's icon set as files (the app draws them from
:data:`voicedesk.ui.icons.SVGS`, in the theme's colours; a test keeps the two equal).
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "voicedesk.svg"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# ICNS entry types for PNG data, by pixel size (ic11-ic14 are the @2x of 16-256).
ICNS_TYPES = (
    (b"icp4", 16),
    (b"icp5", 32),
    (b"icp6", 64),
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic09", 512),
    (b"ic10", 1024),
    (b"ic11", 32),
    (b"ic12", 64),
    (b"ic13", 256),
    (b"ic14", 512),
)


def render(renderer: QSvgRenderer, size: int) -> bytes:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def ico(pngs: dict[int, bytes]) -> bytes:
    header = struct.pack("<HHH", 0, 1, len(ICO_SIZES))
    offset = 6 + 16 * len(ICO_SIZES)
    entries, blobs = b"", b""
    for size in ICO_SIZES:
        png = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in an ICO directory
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(png), offset)
        offset += len(png)
        blobs += png
    return header + entries + blobs


def icns(pngs: dict[int, bytes]) -> bytes:
    body = b"".join(
        kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 - QImage/QPainter need it
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {SOURCE}")
    sizes = sorted({*ICO_SIZES, *(size for _, size in ICNS_TYPES)})
    pngs = {size: render(renderer, size) for size in sizes}
    (HERE / "voicedesk.png").write_bytes(pngs[1024])
    (HERE / "voicedesk.ico").write_bytes(ico(pngs))
    (HERE / "voicedesk.icns").write_bytes(icns(pngs))
    (HERE.parent / "src" / "voicedesk" / "ui" / "icon.png").write_bytes(pngs[256])
    write_ui_icons()
    print(
        "wrote voicedesk.png, voicedesk.ico, voicedesk.icns, src/voicedesk/ui/icon.png "
        "and icons/*.svg"
    )
    return 0


def write_ui_icons() -> None:
    """The window's icons as SVG files (``currentColor`` strokes)."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from voicedesk.ui.icons import SVGS, svg

    folder = HERE / "icons"
    folder.mkdir(exist_ok=True)
    for name in SVGS:
        (folder / f"{name}.svg").write_text(svg(name, "currentColor") + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
