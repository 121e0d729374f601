"""Who decides whether a client tool runs: the user, per agent and per tool.

Allow runs it at the agent's word (the tutorial's default: its agent gives tools 3 s,
too short for a question), Ask asks the user first (no answer within the tool's timeout
is a refusal), Never refuses at once. A refusal reaches the agent as an error result
with a sentence it can repeat. Saved in the settings as
``tool_permissions[agent][tool]``; tools not named there are allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from voicedesk.config import Settings


class Permission(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    NEVER = "never"


DEFAULT_PERMISSION = Permission.ALLOW

#: What the agent is told when a tool does not run (after the protocol's prefix).
REFUSED_NEVER = "The user does not allow {tool} to run on this computer."
REFUSED_DENIED = "The user said no to running {tool} this time."
REFUSED_NO_ANSWER = "The user did not allow {tool} in time."


class ToolPermissionError(ValueError):
    """A permission that cannot be set; a sentence for the user."""


def parse_permission(value: str) -> Permission | None:
    """``allow``/``ask``/``never``; ``reset`` (back to the default) is ``None``."""
    word = value.strip().lower()
    if word == "reset":
        return None
    try:
        return Permission(word)
    except ValueError:
        raise ToolPermissionError(
            f"{value!r} is not a permission: use allow, ask, never or reset."
        ) from None


def permission_for(
    permissions: Mapping[str, Mapping[str, str]], agent: str, tool: str
) -> Permission:
    per_agent = permissions.get(agent)
    value = per_agent.get(tool) if isinstance(per_agent, Mapping) else None
    try:
        return Permission(value) if isinstance(value, str) else DEFAULT_PERMISSION
    except ValueError:
        return DEFAULT_PERMISSION  # a hand-edited value voicedesk does not know


def set_permission(settings: Settings, agent: str, tool: str, value: Permission | None) -> None:
    """Set (``None``: forget) one tool's permission for one agent, in ``settings``."""
    if not agent.strip() or not tool.strip():
        raise ToolPermissionError("Give the agent ID and the tool's name.")
    per_agent = dict(settings.tool_permissions.get(agent, {}))
    if value is None:
        per_agent.pop(tool, None)
    else:
        per_agent[tool] = value.value
    permissions = dict(settings.tool_permissions)
    if per_agent:
        permissions[agent] = per_agent
    else:
        permissions.pop(agent, None)
    settings.tool_permissions = permissions


def describe(permissions: Mapping[str, Mapping[str, str]], tools: list[str]) -> list[str]:
    """Lines for ``voicedesk permissions list``: the built-in tools for every agent
    named, and every setting."""
    lines = [f"Default for every agent: {', '.join(tools)}: {DEFAULT_PERMISSION.value}."]
    for agent in sorted(permissions):
        for tool in sorted(permissions[agent]):
            lines.append(f"{agent}  {tool}  {permission_for(permissions, agent, tool).value}")
    return lines
