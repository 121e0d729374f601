"""Parsing server frames into typed events, and serializing client messages.

:func:`parse_server_frame` never raises: anything that is not a protocol message
becomes a :class:`~voicedesk.protocol.events.MalformedFrame`, and a well-formed
message of an unknown type becomes an :class:`~voicedesk.protocol.events.UnknownEvent`
(the server adds types often; ``convai-protocol.md``, first paragraph).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from voicedesk.protocol.events import (
    AgentAudio,
    AgentChatResponsePart,
    AgentReasoningResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    AgentToolRequest,
    AgentToolResponse,
    AgentTyping,
    Alignment,
    AsrInitiationMetadata,
    ClientMessage,
    ClientToolCall,
    ClientToolResult,
    ContextualUpdate,
    ContextUsage,
    ConversationInitiationMetadata,
    ExternalAgentConnected,
    ExternalAgentDisconnected,
    Feedback,
    GuardrailTriggered,
    InitiationClientData,
    Interruption,
    MalformedFrame,
    McpConnectionStatus,
    McpIntegrationStatus,
    McpToolApprovalResult,
    McpToolCall,
    McpToolState,
    MultimodalMessage,
    Ping,
    Pong,
    RichContent,
    ServerError,
    ServerEvent,
    TentativeAgentResponse,
    TentativeUserTranscript,
    TurnProbability,
    UnknownEvent,
    UserActivity,
    UserAudioChunk,
    UserMessage,
    UserTranscript,
    VadScore,
)

_EXCERPT_CHARS = 120
_MCP_STATES: tuple[McpToolState, ...] = get_args(McpToolState)


class _Malformed(Exception):
    pass


def _excerpt(frame: str | bytes) -> str:
    text = frame if isinstance(frame, str) else repr(frame[:_EXCERPT_CHARS])
    return text[:_EXCERPT_CHARS]


def _object(container: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = container.get(key)
    if not isinstance(value, dict):
        raise _Malformed(f"{key!r} is missing or not an object")
    return value


def _str(container: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = container.get(key, default)
    if not isinstance(value, str):
        raise _Malformed(f"{key!r} is missing or not a string")
    return value


def _optional_int(container: Mapping[str, Any], key: str) -> int | None:
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed(f"{key!r} is not a number")
    if not math.isfinite(value) or value != int(value):
        raise _Malformed(f"{key!r} is not an integer")
    return int(value)


def _int(container: Mapping[str, Any], key: str) -> int:
    value = _optional_int(container, key)
    if value is None:
        raise _Malformed(f"{key!r} is missing")
    return value


def _bool(container: Mapping[str, Any], key: str, default: bool) -> bool:
    value = container.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _Malformed(f"{key!r} is not a boolean")
    return value


def _optional_str(container: Mapping[str, Any], key: str) -> str | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Malformed(f"{key!r} is not a string")
    return value


def _number(container: Mapping[str, Any], key: str) -> float:
    value = container.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Malformed(f"{key!r} is not a number")
    return float(value)


def _optional_object(container: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{key!r} is not an object")
    return value


def _part_type(body: Mapping[str, Any]) -> Literal["start", "delta", "stop"]:
    part_type = body.get("type", "delta")
    if part_type == "start":
        return "start"
    if part_type == "delta":
        return "delta"
    if part_type == "stop":
        return "stop"
    raise _Malformed(f"unknown part type {part_type!r}")


def _metadata(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "conversation_initiation_metadata_event")
    return ConversationInitiationMetadata(
        conversation_id=_str(body, "conversation_id"),
        agent_output_audio_format=_str(body, "agent_output_audio_format", "pcm_16000"),
        user_input_audio_format=_str(body, "user_input_audio_format", "pcm_16000"),
    )


def _alignment(body: Mapping[str, Any]) -> Alignment | None:
    raw = body.get("alignment")
    if not isinstance(raw, dict):
        return None
    chars = raw.get("chars")
    starts = raw.get("char_start_times_ms")
    durations = raw.get("char_durations_ms")
    if not (isinstance(chars, list) and isinstance(starts, list) and isinstance(durations, list)):
        return None
    if not all(isinstance(c, str) for c in chars):
        return None
    numbers = [*starts, *durations]
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
        return None
    return Alignment(tuple(chars), tuple(int(n) for n in starts), tuple(int(n) for n in durations))


def _audio(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "audio_event")
    try:
        audio = base64.b64decode(_str(body, "audio_base_64", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed("'audio_base_64' is not valid base64") from exc
    return AgentAudio(
        audio=audio, event_id=_optional_int(body, "event_id"), alignment=_alignment(body)
    )


def _agent_response(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "agent_response_event")
    return AgentResponse(_str(body, "agent_response"), _optional_int(body, "event_id"))


def _correction(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "agent_response_correction_event")
    return AgentResponseCorrection(
        original_text=_str(body, "original_agent_response"),
        corrected_text=_str(body, "corrected_agent_response"),
        event_id=_optional_int(body, "event_id"),
    )


def _chat_part(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "text_response_part")
    return AgentChatResponsePart(
        _str(body, "text", ""), _part_type(body), _optional_int(body, "event_id")
    )


def _reasoning_part(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "reasoning_response_part")
    # The contract gives this event id as a string; accept a number as well.
    raw_id = body.get("event_id")
    event_id = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else ""
    return AgentReasoningResponsePart(_str(body, "text", ""), _part_type(body), event_id)


def _user_transcript(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "user_transcription_event")
    return UserTranscript(_str(body, "user_transcript"), _optional_int(body, "event_id"))


def _tentative_user_transcript(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "tentative_user_transcription_event")
    return TentativeUserTranscript(_str(body, "user_transcript"), _optional_int(body, "event_id"))


def _tentative_agent_response(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "tentative_agent_response_internal_event")
    return TentativeAgentResponse(_str(body, "tentative_agent_response"))


def _interruption(msg: Mapping[str, Any]) -> ServerEvent:
    body = msg.get("interruption_event")
    if body is None:
        return Interruption(None)
    if not isinstance(body, dict):
        raise _Malformed("'interruption_event' is not an object")
    return Interruption(_optional_int(body, "event_id"))


def _ping(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "ping_event")
    ping_ms = _optional_int(body, "ping_ms")
    return Ping(event_id=_int(body, "event_id"), ping_ms=ping_ms)


def _client_tool_call(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "client_tool_call")
    return ClientToolCall(
        tool_name=_str(body, "tool_name"),
        tool_call_id=_str(body, "tool_call_id"),
        parameters=_optional_object(body, "parameters"),
        event_id=_optional_int(body, "event_id"),
    )


def _vad_score(msg: Mapping[str, Any]) -> ServerEvent:
    return VadScore(_number(_object(msg, "vad_score_event"), "vad_score"))


def _rich_content(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "rich_content")
    return RichContent(
        rich_content_id=_str(body, "rich_content_id", ""),
        component=_str(body, "component"),
        props=_optional_object(body, "props"),
        event_id=_optional_int(body, "event_id"),
    )


def _agent_tool_request(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "agent_tool_request")
    return AgentToolRequest(
        tool_name=_str(body, "tool_name"),
        tool_call_id=_str(body, "tool_call_id", ""),
        tool_type=_str(body, "tool_type", ""),
        event_id=_optional_int(body, "event_id"),
    )


def _tool_response(body: Mapping[str, Any], full_result: str | None) -> AgentToolResponse:
    return AgentToolResponse(
        tool_name=_str(body, "tool_name"),
        tool_call_id=_str(body, "tool_call_id", ""),
        tool_type=_str(body, "tool_type", ""),
        is_error=_bool(body, "is_error", False),
        event_id=_optional_int(body, "event_id"),
        is_called=_bool(body, "is_called", True),
        is_blocked=_bool(body, "is_blocked", False),
        full_result=full_result,
        truncated=_bool(body, "truncated", False),
    )


def _agent_tool_response(msg: Mapping[str, Any]) -> ServerEvent:
    return _tool_response(_object(msg, "agent_tool_response"), None)


def _agent_tool_response_full(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "agent_tool_response_full_payload")
    return _tool_response(body, _str(body, "full_tool_result", ""))


def _mcp_state(body: Mapping[str, Any]) -> McpToolState:
    state = body.get("state")
    for known in _MCP_STATES:
        if state == known:
            return known
    raise _Malformed(f"unknown MCP tool call state {state!r}")


def _mcp_tool_call(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "mcp_tool_call")
    state = _mcp_state(body)
    raw_result = body.get("result")
    result: tuple[dict[str, Any], ...] = ()
    if isinstance(raw_result, list):
        result = tuple(block for block in raw_result if isinstance(block, dict))
    elif raw_result is not None:
        raise _Malformed("'result' is not a list")
    return McpToolCall(
        service_id=_str(body, "service_id", ""),
        tool_call_id=_str(body, "tool_call_id"),
        tool_name=_str(body, "tool_name"),
        state=state,
        parameters=_optional_object(body, "parameters"),
        timestamp=_str(body, "timestamp", ""),
        tool_description=_optional_str(body, "tool_description"),
        approval_timeout_s=_optional_int(body, "approval_timeout_secs"),
        result=result,
        error_message=_optional_str(body, "error_message"),
    )


def _mcp_connection_status(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "mcp_connection_status")
    raw = body.get("integrations")
    if not isinstance(raw, list):
        raise _Malformed("'integrations' is not a list")
    integrations = []
    for item in raw:
        if not isinstance(item, dict):
            raise _Malformed("an MCP integration is not an object")
        integrations.append(
            McpIntegrationStatus(
                integration_id=_str(item, "integration_id"),
                integration_type=_str(item, "integration_type", ""),
                is_connected=_bool(item, "is_connected", False),
                tool_count=_optional_int(item, "tool_count") or 0,
            )
        )
    return McpConnectionStatus(tuple(integrations))


def _context_usage(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "context_usage_event")
    return ContextUsage(
        event_id=_optional_int(body, "event_id"),
        model=_str(body, "model", ""),
        context_tokens=_int(body, "context_tokens"),
        context_limit_tokens=_int(body, "context_limit_tokens"),
    )


def _asr_metadata(msg: Mapping[str, Any]) -> ServerEvent:
    return AsrInitiationMetadata(_optional_object(msg, "asr_initiation_metadata_event"))


def _turn_probability(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "turn_probability_internal_event")
    return TurnProbability(_number(body, "turn_probability"))


def _agent_typing(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "agent_typing_event")
    return AgentTyping(_bool(body, "is_typing", False), _optional_int(body, "duration_ms"))


def _error(msg: Mapping[str, Any]) -> ServerEvent:
    # Lenient on purpose: an error must reach the user even when it is not well formed.
    body = msg.get("error_event")
    if not isinstance(body, dict):
        body = msg

    def text(key: str) -> str | None:
        value = body.get(key)
        return value if isinstance(value, str) and value.strip() else None

    details = body.get("details")
    code = body.get("code")
    return ServerError(
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        message=text("message"),
        reason=text("reason"),
        error_type=text("error_type"),
        debug_message=text("debug_message"),
        details=details if isinstance(details, dict) else None,
    )


_PARSERS: dict[str, Callable[[Mapping[str, Any]], ServerEvent]] = {
    "conversation_initiation_metadata": _metadata,
    "audio": _audio,
    "agent_response": _agent_response,
    "agent_response_correction": _correction,
    "agent_chat_response_part": _chat_part,
    "agent_reasoning_response_part": _reasoning_part,
    "user_transcript": _user_transcript,
    "tentative_user_transcript": _tentative_user_transcript,
    "internal_tentative_agent_response": _tentative_agent_response,
    "interruption": _interruption,
    "ping": _ping,
    "client_tool_call": _client_tool_call,
    "rich_content": _rich_content,
    "agent_tool_request": _agent_tool_request,
    "agent_tool_response": _agent_tool_response,
    "agent_tool_response_full_payload": _agent_tool_response_full,
    "mcp_tool_call": _mcp_tool_call,
    "mcp_connection_status": _mcp_connection_status,
    "vad_score": _vad_score,
    "context_usage": _context_usage,
    "asr_initiation_metadata": _asr_metadata,
    "guardrail_triggered": lambda msg: GuardrailTriggered(),
    "internal_turn_probability": _turn_probability,
    "agent_typing": _agent_typing,
    "external_agent_connected": lambda msg: ExternalAgentConnected(),
    "external_agent_disconnected": lambda msg: ExternalAgentDisconnected(),
    "error": _error,
}


def parse_server_frame(frame: str | bytes) -> ServerEvent:
    """Turn one websocket frame from the server into a typed event. Never raises."""
    if isinstance(frame, bytes):
        return MalformedFrame("binary frame; the protocol uses JSON text frames", _excerpt(frame))
    try:
        msg = json.loads(frame)
    except (json.JSONDecodeError, RecursionError):
        return MalformedFrame("not valid JSON", _excerpt(frame))
    if not isinstance(msg, dict):
        return MalformedFrame("not a JSON object", _excerpt(frame))
    msg_type = msg.get("type")
    if not isinstance(msg_type, str):
        return MalformedFrame("no message type", _excerpt(frame))
    parser = _PARSERS.get(msg_type)
    if parser is None:
        return UnknownEvent(msg_type)
    try:
        return parser(msg)
    except _Malformed as exc:
        return MalformedFrame(f"{msg_type}: {exc}", _excerpt(frame))


# --------------------------------------------------------------------------- serialization


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != {}}


def _initiation(msg: InitiationClientData) -> dict[str, Any]:
    o = msg.overrides
    prompt = _without_none({"prompt": o.prompt, "llm": o.llm})
    override = _without_none(
        {
            "agent": _without_none(
                {
                    "prompt": prompt or None,
                    "first_message": o.first_message,
                    "language": o.language,
                }
            ),
            "tts": _without_none(
                {
                    "voice_id": o.voice_id,
                    "speed": o.tts_speed,
                    "stability": o.tts_stability,
                    "similarity_boost": o.tts_similarity_boost,
                }
            ),
            "asr": _without_none(
                {"keywords": list(o.asr_keywords) if o.asr_keywords is not None else None}
            ),
            "conversation": _without_none(
                {
                    "text_only": o.text_only,
                    "client_events": list(o.client_events) if o.client_events else None,
                }
            ),
        }
    )
    data: dict[str, Any] = {"type": "conversation_initiation_client_data"}
    if override:
        data["conversation_config_override"] = override
    if msg.custom_llm_extra_body is not None:
        data["custom_llm_extra_body"] = msg.custom_llm_extra_body
    data["dynamic_variables"] = dict(msg.dynamic_variables)
    if msg.user_id is not None:
        data["user_id"] = msg.user_id
    data["source_info"] = {"source": msg.source, "version": msg.version}
    return data


def to_json_dict(msg: ClientMessage) -> dict[str, Any]:
    """The JSON object for one client message, as the contract's catalog describes it."""
    match msg:
        case InitiationClientData():
            return _initiation(msg)
        case UserAudioChunk(audio=audio):
            # The contract's only message without a "type" key.
            return {"user_audio_chunk": base64.b64encode(audio).decode("ascii")}
        case Pong(event_id=event_id):
            return {"type": "pong", "event_id": event_id}
        case ClientToolResult():
            return {
                "type": "client_tool_result",
                "tool_call_id": msg.tool_call_id,
                "result": msg.result,
                "is_error": msg.is_error,
            }
        case McpToolApprovalResult():
            return {
                "type": "mcp_tool_approval_result",
                "tool_call_id": msg.tool_call_id,
                "is_approved": msg.is_approved,
            }
        case UserMessage(text=text):
            return {"type": "user_message", "text": text}
        case MultimodalMessage(text=text, file_id=file_id):
            data: dict[str, Any] = {"type": "multimodal_message"}
            if text is not None:
                data["text"] = {"type": "user_message", "text": text}
            if file_id is not None:
                data["file"] = {"type": "file_input", "file_id": file_id}
            return data
        case ContextualUpdate(text=text, context_id=context_id):
            update = {"type": "contextual_update", "text": text}
            if context_id is not None:
                update["context_id"] = context_id
            return update
        case UserActivity():
            return {"type": "user_activity"}
        case Feedback(score=score, event_id=event_id):
            return {"type": "feedback", "score": score, "event_id": event_id}
    raise TypeError(f"not a client message: {msg!r}")  # pragma: no cover - mypy checks


def serialize(msg: ClientMessage) -> str:
    """One JSON text frame for ``msg``."""
    return json.dumps(to_json_dict(msg), separators=(",", ":"), ensure_ascii=False)
