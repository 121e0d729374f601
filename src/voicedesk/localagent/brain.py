"""The local agent's rules: what it answers and which tool it runs.

Three kinds of tools, as a real agent has (``agent.asyncapi.yaml``, ``tool_type``):

- client tools (``client_tool_call``): run by the desktop client (battery, brightness,
  flash);
- a server (webhook) tool the agent runs itself: ``get_weather``, with a made-up,
  deterministic forecast (the demo never goes on the network);
- MCP tools of a pretend MCP server ``demo-mcp`` (``mcp_tool_call``): ``send_email`` and
  ``create_calendar_event`` wait for the user's approval; ``search_docs`` does not.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

FIRST_MESSAGE = (
    "Hi there, woah, so cool that I'm running on {{platform}}. What can I help you with?"
)
CAPABILITIES = (
    "I'm the voicedesk demo agent, running on this computer. I can check your battery, "
    "change your screen brightness or flash your screen, tell you the (made-up) weather "
    "in a city, and send an email or create a calendar event once you approve it."
)

#: The pretend MCP server's id (``mcp_tool_call.service_id``) and its tools.
MCP_SERVICE_ID = "demo-mcp"
MCP_TOOLS: dict[str, str] = {
    "send_email": "Send an email on the user's behalf.",
    "create_calendar_event": "Create an event in the user's calendar.",
    "search_docs": "Search the product documentation.",
}


class ToolKind(StrEnum):
    """Who runs a tool; the value is the contract's ``tool_type``."""

    CLIENT = "client"  # the desktop client, via client_tool_call
    WEBHOOK = "webhook"  # the agent's server, via a webhook
    SYSTEM = "system"  # the agent's own (end_call)
    MCP = "mcp"  # an MCP server the agent is connected to


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """A tool the agent wants to run. ``needs_approval``: an MCP tool the user must
    approve first (``mcp_tool_call`` state ``awaiting_approval``)."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    kind: ToolKind = ToolKind.CLIENT
    needs_approval: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """One user turn's answer: words (may be empty), maybe a tool call, maybe hanging up."""

    say: str
    tool: ToolRequest | None = None
    end_call: bool = False


_NUMBER = re.compile(r"(-?\d+(?:[.,]\d+)?)\s*(%|percent)?", re.IGNORECASE)
_BYE = re.compile(r"\b(bye|goodbye|good bye|hang up|end (the )?(call|conversation))\b", re.I)
_HELLO = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.I)
_WEATHER = re.compile(r"\b(weather|forecast)\b", re.I)
_PLACE = re.compile(r"\b(?:in|for|at)\s+([^?.!,;:]+)", re.I)
_FILLER = re.compile(r"(?:^|\s+)(?:today|tomorrow|tonight|now|right now|please)\s*$", re.I)
_EMAIL = re.compile(r"\b(send|write|mail)\b.*\b(e-?mail|mail|message)\b", re.I)
_RECIPIENT = re.compile(r"\bto\s+([A-Za-z][\w.@+-]*)", re.I)
_CALENDAR = re.compile(
    r"\b(calendar|schedule|(create|add|make|book)\b.*\b(event|meeting|appointment))\b", re.I
)
_TITLE = re.compile(r"\b(?:called|named|titled|about)\s+[\"']?([^\"'?.!,;]+)", re.I)
_DOCS = re.compile(r"\b(search|look up)\b.*\b(docs?|documentation)\b", re.I)
_QUERY = re.compile(r"\b(?:for|about)\s+[\"']?([^\"'?.!;]+)", re.I)
_CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "foggy", "snowy", "partly cloudy")


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


def _place(text: str) -> str | None:
    """The city of "what's the weather in Paris?" (words after in/for/at)."""
    match = _PLACE.search(text)
    if match is None:
        return None
    place = _FILLER.sub("", match.group(1).strip()).strip()
    if not place:
        return None
    return place.title() if place.islower() else place


def _mcp(name: str, parameters: dict[str, Any], needs_approval: bool) -> ToolRequest:
    return ToolRequest(name, parameters, ToolKind.MCP, needs_approval)


def _plan_mcp(text: str) -> Plan | None:
    if _EMAIL.search(text):
        recipient = _RECIPIENT.search(text)
        if recipient is None:
            return Plan(
                "Whom should I send the email to? Say, for example, 'send an email to Bob'."
            )
        return Plan(
            "",
            _mcp(
                "send_email",
                {
                    "to": recipient.group(1),
                    "subject": "A message from the voicedesk demo",
                    "body": text.strip(),
                },
                needs_approval=True,
            ),
        )
    if _CALENDAR.search(text):
        title = _TITLE.search(text)
        name = title.group(1).strip() if title else "Meeting"
        return Plan("", _mcp("create_calendar_event", {"title": name}, needs_approval=True))
    if _DOCS.search(text):
        query = _QUERY.search(text)
        if query is None:
            return Plan("What should I look for in the docs?")
        return Plan("", _mcp("search_docs", {"query": query.group(1).strip()}, False))
    return None


def plan_reply(text: str) -> Plan:
    """Decide the reply to a typed (or transcribed) user message."""
    lowered = text.lower()
    mcp = _plan_mcp(text)
    if mcp is not None:
        return mcp
    if _BYE.search(lowered):
        return Plan("Goodbye! Talk to you soon.", end_call=True)
    if _WEATHER.search(lowered):
        place = _place(text)
        if place is None:
            return Plan("For which city? Ask me, for example, 'what's the weather in Paris?'")
        return Plan("", ToolRequest("get_weather", {"location": place}, ToolKind.WEBHOOK))
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


# ------------------------------------------------------------------ tools the agent runs


def weather_forecast(location: str) -> dict[str, Any]:
    """The demo's made-up weather: the same for the same city, every time (no network)."""
    seed = zlib.crc32(location.strip().lower().encode("utf-8"))
    return {
        "location": location,
        "temperature_c": seed % 31,
        "conditions": _CONDITIONS[(seed >> 8) % len(_CONDITIONS)],
        "source": "voicedesk demo (made up)",
    }


def run_server_tool(tool: ToolRequest) -> tuple[str, bool]:
    """Run a server (webhook) tool: its result as a JSON string, and whether it failed."""
    if tool.name == "get_weather":
        location = tool.parameters.get("location")
        if not isinstance(location, str) or not location.strip():
            return json.dumps({"error": "location is required"}), True
        return json.dumps(weather_forecast(location)), False
    return json.dumps({"error": f"unknown tool {tool.name}"}), True


def mcp_result_text(tool: ToolRequest) -> str:
    """The text block a (pretend) MCP tool returns on success."""
    params = tool.parameters
    if tool.name == "send_email":
        return f"Email to {params.get('to')} sent (demo: nothing was really sent)."
    if tool.name == "create_calendar_event":
        return f"Calendar event '{params.get('title')}' created (demo: nothing was really created)."
    if tool.name == "search_docs":
        return f"Top result for '{params.get('query')}': the voicedesk README (demo search)."
    return f"{tool.name} done (demo)."


def _percent(value: float) -> str:
    return f"{round(value * 100):d} %"


def _weather_sentence(result: str) -> str:
    try:
        forecast = json.loads(result)
        place, temp = forecast["location"], int(forecast["temperature_c"])
        conditions = str(forecast["conditions"])
    except (ValueError, KeyError, TypeError):
        return f"The weather service said: {result}"
    return (
        f"In {place} it's {temp} °C and {conditions}. That's the demo's made-up weather, "
        "not a real forecast."
    )


def reply_to_tool_result(tool: ToolRequest, result: str | None, is_error: bool) -> str:
    """What the agent says once a tool answered (``result`` ``None``: it never answered)."""
    if result is None:
        return f"Your computer did not answer the {tool.name} request in time."
    if is_error:
        # The reference client prefixes a raising tool's message; say only the message.
        return f"That didn't work: {result.removeprefix('Client tool execution failed: ')}"
    if tool.name == "get_weather":
        return _weather_sentence(result)
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


def _mcp_action(tool: ToolRequest) -> tuple[str, str]:
    """(what was done, what was not done) in words, for the MCP tool's replies."""
    params = tool.parameters
    if tool.name == "send_email":
        return f"sent the email to {params.get('to')}", "send the email"
    if tool.name == "create_calendar_event":
        title = params.get("title")
        return f"created the calendar event '{title}'", "create the calendar event"
    return f"ran {tool.name}", f"run {tool.name}"


def reply_to_mcp_result(tool: ToolRequest, approved: bool | None, result: str = "") -> str:
    """What the agent says after an MCP tool call: ``approved`` ``None`` means the
    approval never came (timeout)."""
    done, not_done = _mcp_action(tool)
    if approved is None:
        return f"I didn't {not_done}: your approval did not come in time."
    if not approved:
        return f"OK, I didn't {not_done}, since you declined."
    if tool.name == "search_docs":
        return f"I searched the docs. {result}"
    return f"Done: I {done}. It's a demo, so nothing really left this computer."


def heard_prefix(text: str, fraction: float) -> str:
    """The words of ``text`` a listener heard when ``fraction`` of its audio had played:
    whole words only (``agent_response_correction.corrected_agent_response``)."""
    if fraction >= 1.0:
        return text
    cut = int(len(text) * max(0.0, fraction))
    if cut < len(text) and not text[cut].isspace():
        cut = max(0, text.rfind(" ", 0, cut))  # the word being spoken was not heard whole
    return text[:cut].rstrip()
