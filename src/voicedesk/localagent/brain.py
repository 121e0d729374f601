"""The local agent's rules: what it answers and which client tool it calls."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

FIRST_MESSAGE = (
    "Hi there, woah, so cool that I'm running on {{platform}}. What can I help you with?"
)
CAPABILITIES = (
    "I'm the voicedesk demo agent, running on this computer. I can check your battery, "
    "change your screen brightness or flash your screen."
)


@dataclass(frozen=True, slots=True)
class ToolRequest:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """One user turn's answer: words (may be empty), maybe a tool call, maybe hanging up."""

    say: str
    tool: ToolRequest | None = None
    end_call: bool = False


_NUMBER = re.compile(r"(-?\d+(?:[.,]\d+)?)\s*(%|percent)?", re.IGNORECASE)
_BYE = re.compile(r"\b(bye|goodbye|good bye|hang up|end (the )?(call|conversation))\b", re.I)
_HELLO = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.I)


def fill_variables(template: str, variables: dict[str, Any]) -> str:
    """Replace ``{{name}}`` with the dynamic variable's value."""
    return re.sub(
        r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}",
        lambda m: str(variables.get(m.group(1), m.group(0))),
        template,
    )


def required_variables(template: str) -> set[str]:
    return set(re.findall(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", template))


def _brightness_level(text: str) -> float | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group(1).replace(",", "."))
    if match.group(2) or value > 1:
        value /= 100.0
    return value


def plan_reply(text: str) -> Plan:
    """Decide the reply to a typed (or transcribed) user message."""
    lowered = text.lower()
    if _BYE.search(lowered):
        return Plan("Goodbye! Talk to you soon.", end_call=True)
    if "battery" in lowered:
        return Plan("", ToolRequest("getBatteryLevel"))
    if "bright" in lowered:
        level = _brightness_level(lowered)
        if level is None:
            return Plan("To what level? Say a percentage, like 'set brightness to 30 %'.")
        return Plan("", ToolRequest("changeBrightness", {"brightness": level}))
    if "flash" in lowered:
        return Plan("", ToolRequest("flashScreen"))
    if _HELLO.search(lowered):
        return Plan(f"Hello! {CAPABILITIES}")
    return Plan(f"You said: {text.strip()}. {CAPABILITIES}")


def _percent(value: float) -> str:
    return f"{round(value * 100):d} %"


def reply_to_tool_result(tool: ToolRequest, result: str | None, is_error: bool) -> str:
    """What the agent says once a tool answered (``result`` ``None``: it never answered)."""
    if result is None:
        return f"Your computer did not answer the {tool.name} request in time."
    if is_error:
        # The reference client prefixes a raising tool's message; say only the message.
        return f"That didn't work: {result.removeprefix('Client tool execution failed: ')}"
    if tool.name == "getBatteryLevel":
        try:
            level = float(result)
        except ValueError:
            return f"Your battery says: {result}"
        if not math.isfinite(level):
            return f"Your battery says: {result}"
        return f"Your battery is at {_percent(level)}."
    if tool.name == "changeBrightness":
        try:
            return f"Done: the screen brightness is now {_percent(float(result))}."
        except ValueError:
            return f"Done: {result}"
    if tool.name == "flashScreen":
        return "I flashed your screen."
    return f"The {tool.name} tool answered: {result}"
