"""Client tools the agent can call, and their registry. No Qt here."""

from voicedesk.tools.registry import (
    DEFAULT_TOOL_TIMEOUT_S,
    ClientTool,
    ToolDefinition,
    ToolError,
    ToolOutcome,
    ToolRegistry,
    stringify_result,
)

__all__ = [
    "DEFAULT_TOOL_TIMEOUT_S",
    "ClientTool",
    "ToolDefinition",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "stringify_result",
]
