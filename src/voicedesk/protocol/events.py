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
class AgentToolResponse:
    tool_name: str
    tool_call_id: str
    tool_type: str
    is_error: bool
    event_id: int | None


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` event: the server reports a failure, usually just before it closes."""

    message: str
    code: int | None
    error_type: str | None


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
    | UserTranscript
    | TentativeUserTranscript
    | TentativeAgentResponse
    | Interruption
    | Ping
    | ClientToolCall
    | VadScore
    | AgentToolResponse
    | ServerError
    | UnknownEvent
    | MalformedFrame
)

# --------------------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class ConfigOverrides:
    """Per-conversation overrides; ``None`` means "not set" and is left out of the message."""

    prompt: str | None = None
    first_message: str | None = None
    language: str | None = None
    voice_id: str | None = None
    text_only: bool | None = None


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
class UserMessage:
    text: str


@dataclass(frozen=True, slots=True)
class ContextualUpdate:
    text: str


@dataclass(frozen=True, slots=True)
class UserActivity:
    pass


@dataclass(frozen=True, slots=True)
class Feedback:
    score: Literal["like", "dislike"]
    event_id: int


ClientMessage = (
    InitiationClientData
    | UserAudioChunk
    | Pong
    | ClientToolResult
    | UserMessage
    | ContextualUpdate
    | UserActivity
    | Feedback
)
