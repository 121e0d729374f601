"""Server frames the tests script, built in one place."""

from __future__ import annotations

from typing import Any


def mcp_tool_call(call_id: str, state: str, **extra: Any) -> dict[str, Any]:
    """An ``mcp_tool_call`` of the demo's ``send_email`` tool in ``state``."""
    return {
        "type": "mcp_tool_call",
        "mcp_tool_call": {
            "service_id": "svc",
            "tool_call_id": call_id,
            "tool_name": "send_email",
            "parameters": {"to": "bob"},
            "timestamp": "2026-11-26T10:00:00Z",
            "state": state,
            **extra,
        },
    }
