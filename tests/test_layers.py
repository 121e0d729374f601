"""DESIGN.md's import rules that import-linter cannot state: protocol/ is standard library only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import voicedesk.protocol

PROTOCOL_DIR = Path(voicedesk.protocol.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_protocol_imports_nothing_but_the_standard_library_and_itself() -> None:
    files = sorted(PROTOCOL_DIR.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            allowed = top in sys.stdlib_module_names or name.startswith("voicedesk.protocol")
            assert allowed, f"{path.name} imports {name}"
        assert "asyncio" not in {n.split(".")[0] for n in imported_modules(path)}, path.name
