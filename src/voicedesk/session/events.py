"""Events a :class:`~voicedesk.session.Conversation` publishes to its listeners.

Listeners receive the protocol core's events (status, mode, feedback, transcript
messages, latency, errors, disconnect details) plus the session's own below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicedesk.protocol.machine import CoreEvent
from voicedesk.tools.registry import TOOL_FAILED_PREFIX


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    tool_call_id: str
    tool_name: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call's outcome, as sent to the agent. ``duration_ms`` is wall-clock time."""

    tool_call_id: str
    tool_name: str
    parameters: Mapping[str, Any]
    result: str
    is_error: bool
    duration_ms: float
    detail: str | None = None

    @property
    def message(self) -> str:
        """The result for the user's eyes: an error's own sentence, without the protocol's
        "Client tool execution failed:" prefix."""
        return self.result.removeprefix(TOOL_FAILED_PREFIX) if self.is_error else self.result


@dataclass(frozen=True, slots=True)
class AudioUnavailable:
    """Audio could not start or failed; the conversation goes on as text. A sentence."""

    message: str


@dataclass(frozen=True, slots=True)
class AudioNotice:
    """Audio goes on, but the user should know something (a fallback device, say)."""

    message: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should know that is neither audio nor the connection (the
    history could not be written, say). A sentence."""

    message: str


@dataclass(frozen=True, slots=True)
class UserTextSent:
    """Text the user sent: a typed ``message`` (with a file: ``multimodal``) or
    ``context`` (a contextual update). Emitted once it is queued to the agent."""

    text: str
    kind: str  # "message", "multimodal" or "context"


@dataclass(frozen=True, slots=True)
class TransportNotice:
    """The conversation travels otherwise than asked (WebRTC asked for a text-only
    conversation, say). A sentence."""

    message: str


@dataclass(frozen=True, slots=True)
class AgentTypingChanged:
    """An external agent started or stopped typing (cleared by its reply, by the
    ``duration_ms`` it gave, or after a while)."""

    is_typing: bool


SessionEvent = (
    CoreEvent
    | ToolCallStarted
    | ToolCallFinished
    | AudioUnavailable
    | AudioNotice
    | TransportNotice
    | UserTextSent
    | Notice
    | AgentTypingChanged
)
