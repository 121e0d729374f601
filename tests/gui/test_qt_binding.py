"""The Qt binding itself: a release that mishandles reference counts crashes the window."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QPushButton

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120, method="thread")]


class _Emitter(QObject):
    flag = Signal(bool)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="True and False are immortal from 3.12")
def test_bool_signals_keep_true_and_false_alive(qapp: QApplication) -> None:
    """PySide6 6.12.0 loses a reference to the bool on each Signal(bool) delivered to a
    Python slot; the window emits such signals all the time (toggles, feedback), and
    Python 3.11 aborts once True's count runs out. pyproject excludes that release."""
    emitter = _Emitter()
    seen: list[bool] = []
    emitter.flag.connect(seen.append)
    button = QPushButton()
    button.setCheckable(True)
    button.toggled.connect(seen.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(200):
        emitter.flag.emit(True)
        button.toggle()
    seen.clear()
    assert (sys.getrefcount(True), sys.getrefcount(False)) == before
