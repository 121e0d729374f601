"""Typed messages of the conversation protocol, both directions.

Server events are what :func:`voicedesk.protocol.parse.parse_server_frame` returns;
client messages are what :func:`voicedesk.protocol.parse.serialize` turns into JSON
text frames. Field names follow ``convai-protocol.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

JsonScalar = str | int | float | bool

# --------------------------------------------------------------------------- server -> client


@dataclass(frozen=True, slots=True)
class ConversationInitiationMetadata:
    conversation_id: str
    agent_output_audio_format: str
    user_input_audio_format: str


@dataclass(frozen=True, slots=True)
class Alignment:
    chars: tuple[str, ...]
    char_start_times_ms: tuple[int, ...]
    char_durations_ms: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """A chunk of agent speech, already base64-decoded, in the agent output format."""

    audio: bytes
    event_id: int | None
    alignment: Alignment | None = None


@dataclass(frozen=True, slots=True)
class AgentResponse:
    text: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class AgentResponseCorrection:
    original_text: str
    corrected_text: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class AgentChatResponsePart:
    text: str
    part_type: Literal["start", "delta", "stop"]
    event_id: int | None


@dataclass(frozen=True, slots=True)
class UserTranscript:
    text: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class TentativeUserTranscript:
    text: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class TentativeAgentResponse:
    text: str


@dataclass(frozen=True, slots=True)
class Interruption:
    event_id: int | None


@dataclass(frozen=True, slots=True)
class Ping:
    event_id: int
    ping_ms: int | None


@dataclass(frozen=True, slots=True)
class ClientToolCall:
    tool_name: str
    tool_call_id: str
    parameters: dict[str, Any]
    event_id: int | None


@dataclass(frozen=True, slots=True)
class VadScore:
    score: float


@dataclass(frozen=True, slots=True)
class AgentReasoningResponsePart:
    """A streamed piece of the agent's reasoning (experimental; hidden unless asked for)."""

    text: str
    part_type: Literal["start", "delta", "stop"]
    event_id: str


@dataclass(frozen=True, slots=True)
class RichContent:
    """A component the agent wants shown (``item_card``, …); ``props`` as sent."""

    rich_content_id: str
    component: str
    props: dict[str, Any]
    event_id: int | None

    @property
    def text(self) -> str:
        """The readable text in ``props`` (titles, descriptions, labels), in order; ``""``
        when there is none. Rich components are shown as this plain text."""
        found: list[str] = []
        _collect_text(self.props, found)
        return "\n".join(found)


_TEXT_KEYS = ("title", "heading", "name", "text", "body", "description", "subtitle", "label")


def _collect_text(value: dict[str, Any] | list[Any], found: list[str], depth: int = 0) -> None:
    if depth > 4:
        return
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            item = value.get(key)
            if isinstance(item, str) and item.strip() and item.strip() not in found:
                found.append(item.strip())
        for key, item in value.items():
            if key not in _TEXT_KEYS and isinstance(item, dict | list):
                _collect_text(item, found, depth + 1)
    else:
        for item in value:
            if isinstance(item, dict | list):
                _collect_text(item, found, depth + 1)


@dataclass(frozen=True, slots=True)
class AgentToolRequest:
    """The agent started a tool that runs elsewhere (a webhook, a system or MCP tool)."""

    tool_name: str
    tool_call_id: str
    tool_type: str
    event_id: int | None


@dataclass(frozen=True, slots=True)
class AgentToolResponse:
    """A tool the agent ran finished. ``full_result`` is set only by
    ``agent_tool_response_full_payload`` (the tool's result as an opaque string)."""

    tool_name: str
    tool_call_id: str
    tool_type: str
    is_error: bool
    event_id: int | None
    is_called: bool = True
    is_blocked: bool = False
    full_result: str | None = None
    truncated: bool = False


McpToolState = Literal["loading", "awaiting_approval", "success", "failure"]


@dataclass(frozen=True, slots=True)
class McpToolCall:
    """An MCP tool call in one of its states; ``awaiting_approval`` waits for the user's
    ``mcp_tool_approval_result`` for at most ``approval_timeout_s``."""

    service_id: str
    tool_call_id: str
    tool_name: str
    state: McpToolState
    parameters: dict[str, Any]
    timestamp: str
    tool_description: str | None = None
    approval_timeout_s: int | None = None
    result: tuple[dict[str, Any], ...] = ()
    error_message: str | None = None

    @property
    def result_text(self) -> str:
        """The text blocks of a successful result, joined (other blocks are named)."""
        parts: list[str] = []
        for block in self.result:
            text = block.get("text")
            parts.append(text if isinstance(text, str) else f"[{block.get('type', 'content')}]")
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class McpIntegrationStatus:
    integration_id: str
    integration_type: str
    is_connected: bool
    tool_count: int


@dataclass(frozen=True, slots=True)
class McpConnectionStatus:
    integrations: tuple[McpIntegrationStatus, ...]


@dataclass(frozen=True, slots=True)
class ContextUsage:
    event_id: int | None
    model: str
    context_tokens: int
    context_limit_tokens: int


@dataclass(frozen=True, slots=True)
class AsrInitiationMetadata:
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GuardrailTriggered:
    """A guardrail of the agent stopped or changed a reply."""


@dataclass(frozen=True, slots=True)
class TurnProbability:
    """Internal: the probability that the user's turn is over (0..1)."""

    probability: float


@dataclass(frozen=True, slots=True)
class AgentTyping:
    """An external (human) agent is typing; ``duration_ms``: clear it after that long."""

    is_typing: bool
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class ExternalAgentConnected:
    """A human agent (e.g. a contact-centre operator) took over the conversation."""


@dataclass(frozen=True, slots=True)
class ExternalAgentDisconnected:
    """The human agent left; the AI agent is back in control."""


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` event. Only ``code`` is required by the contract; ``reason`` is the
    generic sentence every client gets, ``message`` a more specific one. ``debug_message``
    and ``details`` are for the log only."""

    code: int | None
    message: str | None = None
    reason: str | None = None
    error_type: str | None = None
    debug_message: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A well-formed message of a type this client does not use; ignored safely."""

    type: str


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """A frame that is not a protocol message: bad JSON, a binary frame, wrong field types."""

    reason: str
    excerpt: str


ServerEvent = (
    ConversationInitiationMetadata
    | AgentAudio
    | AgentResponse
    | AgentResponseCorrection
    | AgentChatResponsePart
    | AgentReasoningResponsePart
    | UserTranscript
    | TentativeUserTranscript
    | TentativeAgentResponse
    | Interruption
    | Ping
    | ClientToolCall
    | RichContent
    | AgentToolRequest
    | AgentToolResponse
    | McpToolCall
    | McpConnectionStatus
    | VadScore
    | ContextUsage
    | AsrInitiationMetadata
    | GuardrailTriggered
    | TurnProbability
    | AgentTyping
    | ExternalAgentConnected
    | ExternalAgentDisconnected
    | ServerError
    | UnknownEvent
    | MalformedFrame
)

# --------------------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class ConfigOverrides:
    """Per-conversation overrides (the contract's ``ConversationConfigClientOverride``);
    ``None`` means "not set" and is left out of the message. The agent must allow each
    override in its security settings, or the server closes with ``override_error``."""

    prompt: str | None = None
    llm: str | None = None
    first_message: str | None = None
    language: str | None = None
    voice_id: str | None = None
    tts_speed: float | None = None
    tts_stability: float | None = None
    tts_similarity_boost: float | None = None
    asr_keywords: tuple[str, ...] | None = None
    text_only: bool | None = None
    client_events: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class InitiationClientData:
    dynamic_variables: dict[str, JsonScalar] = field(default_factory=dict)
    overrides: ConfigOverrides = field(default_factory=ConfigOverrides)
    user_id: str | None = None
    source: str = "voicedesk"
    version: str = "0.0.0"
    custom_llm_extra_body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UserAudioChunk:
    """Microphone audio in the user input format (raw bytes; base64 on the wire)."""

    audio: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    event_id: int


@dataclass(frozen=True, slots=True)
class ClientToolResult:
    tool_call_id: str
    result: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class McpToolApprovalResult:
    tool_call_id: str
    is_approved: bool


@dataclass(frozen=True, slots=True)
class UserMessage:
    text: str


@dataclass(frozen=True, slots=True)
class MultimodalMessage:
    """Text with a file the user uploaded earlier (``file_id``); either may be absent."""

    text: str | None = None
    file_id: str | None = None


@dataclass(frozen=True, slots=True)
class ContextualUpdate:
    text: str
    context_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserActivity:
    pass


FeedbackScore = Literal["like", "dislike"]


@dataclass(frozen=True, slots=True)
class Feedback:
    """A rating of the agent event ``event_id``; ``score`` ``None`` clears it."""

    score: FeedbackScore | None
    event_id: int


ClientMessage = (
    InitiationClientData
    | UserAudioChunk
    | Pong
    | ClientToolResult
    | McpToolApprovalResult
    | UserMessage
    | MultimodalMessage
    | ContextualUpdate
    | UserActivity
    | Feedback
)
