"""The message catalog: every message of the conversation protocol, both directions.

Written by us from the facts of ElevenLabs' official contract (``agent.asyncapi.yaml``
in ``shared/reference``): each message's wire ``type``, its fields, which are
required, their JSON types, enums and bounds. The parser and serializer follow it;
the tests generate contract-valid frames from it and compare it with the contract
file itself, so a message or required field added on either side is noticed.

Standard library only, like the rest of ``protocol/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

JsonType = Literal["string", "integer", "number", "boolean", "object", "array", "null"]


class Direction(StrEnum):
    SERVER = "server"  # server -> client (the contract's "publish")
    CLIENT = "client"  # client -> server (the contract's "subscribe")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a JSON object.

    ``types``: the JSON types allowed (``"null"`` among them when the field may be null).
    ``fields``: an object's known fields. ``variants``: for an object that is one of
    several shapes, the fields each shape adds to ``fields``. ``items``: an array's
    element. ``free``: an object whose content is not described (any keys).
    """

    name: str
    types: tuple[JsonType, ...]
    required: bool = False
    const: str | None = None
    enum: tuple[str | int, ...] = ()
    fields: tuple[Field, ...] = ()
    variants: tuple[tuple[Field, ...], ...] = ()
    items: Field | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    format: str | None = None  # "base64", "date-time"
    free: bool = False

    @property
    def nullable(self) -> bool:
        return "null" in self.types


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """One message. ``type`` is the wire ``type`` (``None`` only for ``user_audio_chunk``,
    the one message without one); ``name`` is the contract's message name."""

    name: str
    type: str | None
    direction: Direction
    fields: tuple[Field, ...]
    default_event: bool = False  # a real agent sends it without being asked

    @property
    def key(self) -> str:
        """The wire type, or the one field of the message that has none."""
        return self.type if self.type is not None else self.fields[0].name

    @property
    def body(self) -> Field | None:
        """The object that carries a server event's data (``audio_event``, …), if any."""
        for f in self.fields:
            if f.name != "type" and "object" in f.types:
                return f
        return None


# --------------------------------------------------------------------------- helpers


def _s(name: str, required: bool = False, **kw: Any) -> Field:
    return Field(name, ("string",), required, **kw)


def _ns(name: str, required: bool = False, **kw: Any) -> Field:
    return Field(name, ("string", "null"), required, **kw)


def _i(name: str, required: bool = False, **kw: Any) -> Field:
    return Field(name, ("integer",), required, **kw)


def _n(name: str, required: bool = False, **kw: Any) -> Field:
    return Field(name, ("number",), required, **kw)


def _b(name: str, required: bool = False, **kw: Any) -> Field:
    return Field(name, ("boolean",), required, **kw)


def _obj(name: str, required: bool, *fields: Field, **kw: Any) -> Field:
    return Field(name, ("object",), required, fields=fields, **kw)


def _free(name: str, required: bool = False, nullable: bool = False) -> Field:
    types: tuple[JsonType, ...] = ("object", "null") if nullable else ("object",)
    return Field(name, types, required, free=True)


def _type(value: str) -> Field:
    return Field("type", ("string",), True, const=value)


def _server(name: str, wire: str, *fields: Field, default: bool = False) -> MessageSpec:
    return MessageSpec(name, wire, Direction.SERVER, (_type(wire), *fields), default)


def _event(name: str, wire: str, body: str, *fields: Field, default: bool = False) -> MessageSpec:
    return _server(name, wire, _obj(body, True, *fields), default=default)


def _client(name: str, wire: str, *fields: Field) -> MessageSpec:
    return MessageSpec(name, wire, Direction.CLIENT, (_type(wire), *fields))


# --------------------------------------------------------------------------- enums

AUDIO_FORMATS = (
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
)
PART_TYPES = ("start", "delta", "stop")
CLOSE_CODES = (1000, 1002, 1008, 1011)
MCP_STATES = ("loading", "awaiting_approval", "success", "failure")
MCP_INTEGRATION_TYPES = ("mcp_server", "mcp_integration")
FEEDBACK_SCORES = ("like", "dislike")

#: The contract's ``ErrorType`` enum, in its order.
ERROR_TYPES = (
    "unknown",
    "invalid_message",
    "telephony_agent_error",
    "mcp_tool_error",
    "mcp_https_error",
    "value_error",
    "missing_fields",
    "override_error",
    "missing_dynamic_variable_transfer",
    "missing_dynamic_variable",
    "websocket_disconnect",
    "safety_violation",
    "llm_timeout",
    "transport_receive_timeout",
    "asyncio_timeout",
    "http_exception",
    "max_duration_exceeded",
    "llm_error",
    "custom_llm_error",
    "cascade_brain_error",
    "asr_transcription_error",
    "vad_error",
    "turn_probability_error",
    "tts_cascade_error",
    "redis_timeout_error",
    "unknown_websocket_crash",
)

#: The contract's ``Language`` enum.
LANGUAGES = tuple(
    "en ja zh de hi fr ko pt pt-br it es id nl tr pl sv bg ro ar cs el fi ms da ta uk ru hu "  # noqa: SIM905
    "hr sk no vi tl af hy as az be bn bs ca et gl ka gu ha he is ga jv kn kk ky lv lt lb mk "
    "ml mr ne ps fa pa sr sd sl so sw te th ur cy".split()
)

# --------------------------------------------------------------------------- server -> client

_ALIGNMENT = _obj(
    "alignment",
    False,
    Field("chars", ("array",), True, items=_s("char")),
    Field("char_start_times_ms", ("array",), True, items=_i("ms")),
    Field("char_durations_ms", ("array",), True, items=_i("ms")),
)

_MCP_BASE = (
    _s("service_id", True),
    _s("tool_call_id", True),
    _s("tool_name", True),
    _ns("tool_description"),
    _free("parameters", True),
    _s("timestamp", True, format="date-time"),
)
_MCP_VARIANTS = (
    (_s("state", True, const="loading"),),
    (_s("state", True, const="awaiting_approval"), _i("approval_timeout_secs", True)),
    (
        _s("state", True, const="success"),
        Field("result", ("array",), True, items=_free("content_block")),
    ),
    (_s("state", True, const="failure"), _s("error_message", True)),
)

_TOOL_RESPONSE_FIELDS = (
    _s("tool_name", True),
    _s("tool_call_id", True),
    _s("tool_type", True),
    _b("is_error", True),
    _b("is_called", True),
    _i("event_id", True),
)

SERVER_MESSAGES: tuple[MessageSpec, ...] = (
    _event(
        "Audio",
        "audio",
        "audio_event",
        _s("audio_base_64", True, format="base64"),
        _i("event_id", True),
        _ALIGNMENT,
        default=True,
    ),
    _event(
        "UserTranscript",
        "user_transcript",
        "user_transcription_event",
        _s("user_transcript", True),
        _i("event_id", True),
        default=True,
    ),
    _event(
        "TentativeUserTranscript",
        "tentative_user_transcript",
        "tentative_user_transcription_event",
        _s("user_transcript", True),
        _i("event_id", True),
        default=True,
    ),
    _event(
        "AgentResponse",
        "agent_response",
        "agent_response_event",
        _s("agent_response", True),
        _i("event_id", True),
        default=True,
    ),
    _event(
        "AgentResponseCorrection",
        "agent_response_correction",
        "agent_response_correction_event",
        _s("original_agent_response", True),
        _s("corrected_agent_response", True),
        _i("event_id", True),
    ),
    _event(
        "AgentChatResponsePart",
        "agent_chat_response_part",
        "text_response_part",
        _s("text", True),
        _s("type", True, enum=PART_TYPES),
        _i("event_id", True),
    ),
    _event(
        "AgentReasoningResponsePart",
        "agent_reasoning_response_part",
        "reasoning_response_part",
        _s("text", True),
        _s("type", True, enum=PART_TYPES),
        _s("event_id", True),  # a string here, unlike every other event id
    ),
    _event(
        "Interruption", "interruption", "interruption_event", _i("event_id", True), default=True
    ),
    _event(
        "ConversationMetadata",
        "conversation_initiation_metadata",
        "conversation_initiation_metadata_event",
        _s("conversation_id", True),
        _s("agent_output_audio_format", True, enum=AUDIO_FORMATS),
        _s("user_input_audio_format", True, enum=AUDIO_FORMATS),
        default=True,
    ),
    _event(
        "ClientToolCallMessage",
        "client_tool_call",
        "client_tool_call",
        _s("tool_name", True),
        _s("tool_call_id", True),
        _free("parameters", True),
        _i("event_id", True),
    ),
    _event(
        "RichContentMessage",
        "rich_content",
        "rich_content",
        _s("rich_content_id", True),
        _s("component", True),
        _free("props", True),
        _i("event_id", True),
    ),
    _event(
        "AgentToolRequestMessage",
        "agent_tool_request",
        "agent_tool_request",
        _s("tool_name", True),
        _s("tool_call_id", True),
        _s("tool_type", True),
        _i("event_id", True),
    ),
    _event(
        "AgentToolResponseMessage",
        "agent_tool_response",
        "agent_tool_response",
        *_TOOL_RESPONSE_FIELDS,
    ),
    _event(
        "AgentToolResponseFullPayloadMessage",
        "agent_tool_response_full_payload",
        "agent_tool_response_full_payload",
        *_TOOL_RESPONSE_FIELDS,
        _b("is_blocked"),
        _s("full_tool_result", True),
        _b("truncated"),
    ),
    _server(
        "MCPToolCall",
        "mcp_tool_call",
        Field("mcp_tool_call", ("object",), True, fields=_MCP_BASE, variants=_MCP_VARIANTS),
    ),
    _event(
        "MCPConnectionStatusMessage",
        "mcp_connection_status",
        "mcp_connection_status",
        Field(
            "integrations",
            ("array",),
            True,
            items=_obj(
                "integration",
                True,
                _s("integration_id", True),
                _s("integration_type", True, enum=MCP_INTEGRATION_TYPES),
                _b("is_connected", True),
                _i("tool_count", True),
            ),
        ),
    ),
    _event(
        "VADScore",
        "vad_score",
        "vad_score_event",
        _n("vad_score", True, minimum=0.0, maximum=1.0),
    ),
    _event(
        "Ping",
        "ping",
        "ping_event",
        _i("event_id", True),
        Field("ping_ms", ("integer", "null")),
        default=True,
    ),
    _event(
        "ContextUsage",
        "context_usage",
        "context_usage_event",
        _i("event_id", True),
        _s("model", True),
        _i("context_tokens", True),
        _i("context_limit_tokens", True),
    ),
    _server(
        "ASRInitiationMetadata",
        "asr_initiation_metadata",
        _free("asr_initiation_metadata_event", True),
    ),
    _server("GuardrailTriggered", "guardrail_triggered"),
    _event(
        "InternalTurnProbability",
        "internal_turn_probability",
        "turn_probability_internal_event",
        _n("turn_probability", True, minimum=0.0, maximum=1.0),
    ),
    _event(
        "InternalTentativeAgentResponse",
        "internal_tentative_agent_response",
        "tentative_agent_response_internal_event",
        _s("tentative_agent_response", True),
    ),
    _event(
        "AgentTyping",
        "agent_typing",
        "agent_typing_event",
        _b("is_typing", True),
        Field("duration_ms", ("integer", "null")),
    ),
    _server(
        "ExternalAgentConnected",
        "external_agent_connected",
        _free("external_agent_connected_event"),
    ),
    _server(
        "ExternalAgentDisconnected",
        "external_agent_disconnected",
        _free("external_agent_disconnected_event"),
    ),
    _event(
        "ErrorMessage",
        "error",
        "error_event",
        _i("code", True, enum=CLOSE_CODES),
        _s("message"),
        _ns("error_type", enum=ERROR_TYPES),
        _ns("reason"),
        _ns("debug_message"),
        _free("details", nullable=True),
    ),
)

#: Every server event type a client may ask for in ``client_events`` (the contract's
#: ``ClientEvent``): all but ``error``.
CLIENT_EVENT_TYPES = tuple(m.key for m in SERVER_MESSAGES if m.type != "error")

# --------------------------------------------------------------------------- client -> server

_OVERRIDE = _obj(
    "conversation_config_override",
    False,
    _obj(
        "agent",
        False,
        _ns("first_message"),
        _s("language", enum=LANGUAGES),
        _obj("prompt", False, _ns("prompt"), _ns("llm")),
        Field("native_mcp_server_ids", ("array", "null"), items=_s("id"), max_items=10),
    ),
    _obj("asr", False, Field("keywords", ("array", "null"), items=_s("keyword"))),
    _obj(
        "tts",
        False,
        _ns("voice_id"),
        Field("stability", ("number", "null"), minimum=0.0, maximum=1.0),
        Field("speed", ("number", "null"), minimum=0.7, maximum=5.0),
        Field("similarity_boost", ("number", "null"), minimum=0.0, maximum=1.0),
    ),
    _obj(
        "conversation",
        False,
        Field("text_only", ("boolean", "null")),
        Field(
            "client_events",
            ("array", "null"),
            items=_s("event", enum=CLIENT_EVENT_TYPES),
            min_items=1,
        ),
    ),
)

_USER_MESSAGE_FIELDS = (_ns("text"), _s("rich_content_id"))

CLIENT_MESSAGES: tuple[MessageSpec, ...] = (
    MessageSpec(
        "UserAudio",
        None,
        Direction.CLIENT,
        (_s("user_audio_chunk", True, format="base64"),),
    ),
    _client("Pong", "pong", _i("event_id", True)),
    _client("UserMessage", "user_message", *_USER_MESSAGE_FIELDS),
    _client("UserActivity", "user_activity"),
    _client(
        "UserFeedback",
        "feedback",
        _i("event_id", True),
        Field("score", ("string", "null"), True, enum=FEEDBACK_SCORES),
    ),
    _client(
        "ClientToolResult",
        "client_tool_result",
        _s("tool_call_id", True),
        _s("result", True),
        _b("is_error", True),
    ),
    _client(
        "MCPToolApprovalResult",
        "mcp_tool_approval_result",
        _s("tool_call_id", True),
        _b("is_approved", True),
    ),
    _client("ContextualUpdate", "contextual_update", _s("text", True), _s("context_id")),
    _client(
        "ConversationInitiation",
        "conversation_initiation_client_data",
        _OVERRIDE,
        _free("custom_llm_extra_body"),
        _free("dynamic_variables"),
        _ns("user_id"),
        _obj("source_info", False, _ns("source"), _ns("version")),
        _obj(
            "tool_mock_config",
            False,
            _s("mocking_strategy", enum=("none", "all", "selected")),
            Field("mocked_tool_names", ("array",), items=_s("name")),
            _s("fallback_strategy", enum=("raise_error", "call_real_tool")),
        ),
    ),
    _client(
        "MultimodalMessage",
        "multimodal_message",
        Field(
            "text",
            ("object", "null"),
            fields=(_type("user_message"), *_USER_MESSAGE_FIELDS),
        ),
        Field(
            "file",
            ("object", "null"),
            fields=(_s("type", True, const="file_input"), _s("file_id", True)),
        ),
    ),
)

#: The ``client_events`` a real agent sends when the initiation does not ask for others
#: (the contract's ``ConversationConfigOverride.client_events`` description).
DEFAULT_CLIENT_EVENTS = tuple(m.key for m in SERVER_MESSAGES if m.default_event)

#: Sent whenever they happen, whatever ``client_events`` says: the agent's calls of the
#: client's own tools, and errors (``convai-protocol.md``, "Which events a real agent sends").
ALWAYS_SENT_EVENTS = ("client_tool_call", "error")


_BY_KEY = {(m.direction, m.key): m for m in (*SERVER_MESSAGES, *CLIENT_MESSAGES)}


def message_spec(direction: Direction, key: str) -> MessageSpec | None:
    """The spec of a message by its wire type (or ``user_audio_chunk``)."""
    return _BY_KEY.get((direction, key))


def message_key(message: dict[str, Any]) -> str | None:
    """The wire type of a decoded message; ``user_audio_chunk`` for the one without."""
    kind = message.get("type")
    if isinstance(kind, str):
        return kind
    return "user_audio_chunk" if "user_audio_chunk" in message else None
