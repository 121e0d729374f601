"""The window's icon set: one SVG drawing per icon, the same as the files in
``resources/icons/``, rendered sharp at any pixel ratio in the theme's colour."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from voicedesk.ui import icons

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "icons"


@pytest.mark.parametrize("name", sorted(icons.SVGS))
def test_the_resource_files_are_the_app_s_drawings(name: str) -> None:
    assert (RESOURCES / f"{name}.svg").read_text(encoding="utf-8") == (
        icons.svg(name, "currentColor") + "\n"
    ), "run python resources/make_icons.py"


def test_an_icon_is_drawn_from_the_vector_at_hidpi(qapp: QApplication) -> None:
    icon = icons.icon("mic", "#4F46E5")
    assert icons.icon("mic", "#4F46E5") is icon, "made once per colour"
    for ratio in (1.0, 2.0):
        pixmap = icon.pixmap(QSize(24, 24), ratio)
        image = pixmap.toImage()
        assert image.width() == round(24 * ratio)
        colours = [
            image.pixelColor(x, y) for x in range(image.width()) for y in range(image.height())
        ]
        inked = [c for c in colours if c.alpha() > 200]
        assert len(inked) > 20 * ratio * ratio, "strokes are drawn at every ratio"
        assert any(c.blue() > 200 and c.red() < 120 for c in inked), "in the colour asked"


def test_a_disabled_icon_has_its_own_colour(qapp: QApplication) -> None:
    icon = icons.icon("send", "#FFFFFF", "#5B6072")
    image = icon.pixmap(QSize(24, 24), 1.0, QIcon.Mode.Disabled).toImage()
    inked = [
        image.pixelColor(x, y)
        for x in range(24)
        for y in range(24)
        if image.pixelColor(x, y).alpha() > 200
    ]
    assert inked, "drawn when disabled"
    assert all(c.red() < 120 for c in inked), "in the muted colour, not white on grey"
