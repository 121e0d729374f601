"""Client tools: definitions the agent is configured with, and the registry the session calls.

A tool handler takes the call's parameters (a dict) and returns any value; the
session turns that value into the protocol's string result with
:func:`stringify_result`. Handlers may be plain functions (run in a worker thread,
so they never block the event loop) or coroutine functions (awaited on the loop).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ToolHandler = Callable[[Mapping[str, Any]], Any] | Callable[[Mapping[str, Any]], Awaitable[Any]]

DEFAULT_TOOL_TIMEOUT_S = 3.0
NULL_RESULT = "Client tool execution successful."
#: The reference client's prefix of a raising tool's result (``convai-protocol.md``).
TOOL_FAILED_PREFIX = "Client tool execution failed: "


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A tool's return value plus a line for the user that the agent does not get."""

    value: Any
    detail: str | None = None


class ToolError(Exception):
    """A tool failed in a way the agent should hear about; the message is read out."""


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """How a tool is declared in the agent's settings (name, description, JSON schema)."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []}
    )
    wait_for_response: bool = True
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
            "wait_for_response": self.wait_for_response,
            "response_timeout_secs": self.timeout_s,
        }


@dataclass(frozen=True, slots=True)
class ClientTool:
    definition: ToolDefinition
    handler: ToolHandler

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


class ToolRegistry:
    """The client tools a conversation offers, by name."""

    def __init__(self, tools: list[ClientTool] | None = None) -> None:
        self._tools: dict[str, ClientTool] = {}
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: ClientTool) -> None:
        self._tools[tool.name] = tool

    def get(self, name: str) -> ClientTool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ClientTool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.definition.as_json() for tool in self._tools.values()]


def format_fraction(level: float) -> str:
    """A level 0..1 for the agent: two decimals at most, no trailing zeros (``"0.82"``, ``"1"``)."""
    return f"{round(level, 2):.2f}".rstrip("0").rstrip(".") or "0"


def _format_number(value: float) -> str:
    # As JavaScript's String(x): integral floats print without ".0".
    if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def stringify_result(value: Any) -> str:
    """The protocol's string form of a tool's return value (``convai-protocol.md``).

    Strings as-is; ``None`` -> the reference client's success sentence; numbers and
    booleans as JavaScript's ``String(x)`` (``0`` stays ``"0"``); anything else as JSON.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return NULL_RESULT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_number(value)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
