"""Run pytest with PySide6 and qasync made unimportable (DESIGN.md: the engine needs no Qt).

Usage: python tests/without_qt.py [pytest args]
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from types import ModuleType

BLOCKED = ("PySide6", "shiboken6", "qasync", "pytestqt")


class _QtBlocker(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{fullname} is blocked: this run checks Qt is not needed")
        return


if __name__ == "__main__":
    sys.meta_path.insert(0, _QtBlocker())
    import pytest

    code = pytest.main(sys.argv[1:])
    if any(name.split(".")[0] in BLOCKED for name in sys.modules):
        print("a blocked Qt module was imported", file=sys.stderr)
        code = 1
    sys.exit(code)
