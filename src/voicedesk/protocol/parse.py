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
from typing import Any

from voicedesk.protocol.events import (
    AgentAudio,
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    AgentToolResponse,
    Alignment,
    ClientMessage,
    ClientToolCall,
    ClientToolResult,
    ContextualUpdate,
    ConversationInitiationMetadata,
    InitiationClientData,
    Interruption,
    MalformedFrame,
    Ping,
    Pong,
    ServerError,
    ServerEvent,
    TentativeAgentResponse,
    TentativeUserTranscript,
    UnknownEvent,
    UserActivity,
    UserAudioChunk,
    UserMessage,
    UserTranscript,
    VadScore,
)

_EXCERPT_CHARS = 120


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
    if not isinstance(value, bool):
        raise _Malformed(f"{key!r} is not a boolean")
    return value


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
        audio = base64.b64decode(_str(body, "audio_base_64"), validate=True)
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
    part_type = body.get("type", "delta")
    if part_type not in ("start", "delta", "stop"):
        raise _Malformed(f"unknown text_response_part type {part_type!r}")
    return AgentChatResponsePart(_str(body, "text", ""), part_type, _optional_int(body, "event_id"))


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
    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise _Malformed("'parameters' is not an object")
    return ClientToolCall(
        tool_name=_str(body, "tool_name"),
        tool_call_id=_str(body, "tool_call_id"),
        parameters=parameters,
        event_id=_optional_int(body, "event_id"),
    )


def _vad_score(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "vad_score_event")
    score = body.get("vad_score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise _Malformed("'vad_score' is not a number")
    return VadScore(float(score))


def _agent_tool_response(msg: Mapping[str, Any]) -> ServerEvent:
    body = _object(msg, "agent_tool_response")
    return AgentToolResponse(
        tool_name=_str(body, "tool_name"),
        tool_call_id=_str(body, "tool_call_id", ""),
        tool_type=_str(body, "tool_type", ""),
        is_error=_bool(body, "is_error", False),
        event_id=_optional_int(body, "event_id"),
    )


def _error(msg: Mapping[str, Any]) -> ServerEvent:
    body = msg.get("error_event")
    if not isinstance(body, dict):
        body = msg
    message = body.get("message")
    error_type = body.get("error_type")
    return ServerError(
        message=message if isinstance(message, str) else "",
        code=_optional_int(body, "code"),
        error_type=error_type if isinstance(error_type, str) else None,
    )


_PARSERS: dict[str, Callable[[Mapping[str, Any]], ServerEvent]] = {
    "conversation_initiation_metadata": _metadata,
    "audio": _audio,
    "agent_response": _agent_response,
    "agent_response_correction": _correction,
    "agent_chat_response_part": _chat_part,
    "user_transcript": _user_transcript,
    "tentative_user_transcript": _tentative_user_transcript,
    "internal_tentative_agent_response": _tentative_agent_response,
    "interruption": _interruption,
    "ping": _ping,
    "client_tool_call": _client_tool_call,
    "vad_score": _vad_score,
    "agent_tool_response": _agent_tool_response,
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


def _initiation(msg: InitiationClientData) -> dict[str, Any]:
    o = msg.overrides
    agent: dict[str, Any] = {}
    if o.prompt is not None:
        agent["prompt"] = {"prompt": o.prompt}
    if o.first_message is not None:
        agent["first_message"] = o.first_message
    if o.language is not None:
        agent["language"] = o.language
    override: dict[str, Any] = {}
    if agent:
        override["agent"] = agent
    if o.voice_id is not None:
        override["tts"] = {"voice_id": o.voice_id}
    if o.text_only is not None:
        override["conversation"] = {"text_only": o.text_only}
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
    """The JSON object for one client message, as in ``convai-protocol.md``."""
    match msg:
        case InitiationClientData():
            return _initiation(msg)
        case UserAudioChunk(audio=audio):
            # The reference's only message without a "type" key.
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
        case UserMessage(text=text):
            return {"type": "user_message", "text": text}
        case ContextualUpdate(text=text):
            return {"type": "contextual_update", "text": text}
        case UserActivity():
            return {"type": "user_activity"}
    # All that is left is Feedback (mypy checks the narrowing).
    return {"type": "feedback", "score": msg.score, "event_id": msg.event_id}


def serialize(msg: ClientMessage) -> str:
    """One JSON text frame for ``msg``."""
    return json.dumps(to_json_dict(msg), separators=(",", ":"), ensure_ascii=False)
