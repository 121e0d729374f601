"""Why a conversation ended, and plain sentences for users.

Close codes and error types come from ``convai-protocol.md`` ("Close codes and
errors"); REST error codes from the ElevenLabs API error table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

NORMAL_CLOSURE = 1000
PROTOCOL_ERROR = 1002
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
ABNORMAL_CLOSURE = 1006
#: RFC 6455: a message too big to process. voicedesk closes with it itself when the agent
#: sends a frame over its 16 MiB limit.
MESSAGE_TOO_BIG = 1009

USER_ENDED_REASON = "User ended conversation"


class DisconnectReason(StrEnum):
    USER = "user"
    AGENT = "agent"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DisconnectDetails:
    """How a conversation ended. ``message`` is a sentence a user can read."""

    reason: DisconnectReason
    message: str
    close_code: int | None = None
    close_reason: str | None = None
    error_type: str | None = None
    #: Starting failed in a way that may pass by itself (the network, a timeout, the
    #: service busy): worth another try, unlike a refused key or an unknown agent.
    transient: bool = False

    @property
    def is_error(self) -> bool:
        return self.reason is DisconnectReason.ERROR


_TRY_AGAIN = "Try again in a moment."
_AGENT_SETTINGS = "Check the agent's settings in the ElevenLabs dashboard"

#: A sentence for each of the contract's 26 ``ErrorType`` values (``catalog.ERROR_TYPES``):
#: what happened and what to do. Used when the error event has no ``message`` or ``reason``.
ERROR_TYPE_SENTENCES = {
    "unknown": f"The agent service had a problem it did not explain. {_TRY_AGAIN}",
    "invalid_message": (
        "The agent service could not read a message from voicedesk. Update voicedesk, and "
        "report it if it happens again."
    ),
    "telephony_agent_error": (
        "This agent only transcribes speech and cannot hold a conversation. Choose an agent "
        "that can answer."
    ),
    "mcp_tool_error": (
        f"One of the agent's MCP tools is set up wrongly (its schema is invalid). "
        f"{_AGENT_SETTINGS}."
    ),
    "mcp_https_error": (
        f"One of the agent's MCP servers does not use https, which is required. {_AGENT_SETTINGS}."
    ),
    "value_error": (
        "The agent service rejected a value voicedesk sent. Check the overrides and dynamic "
        "variables you set, then start again."
    ),
    "missing_fields": (
        "A message from voicedesk lacked a required field. Update voicedesk, and report it if "
        "it happens again."
    ),
    "override_error": (
        "The agent does not allow one of the overrides that were sent (prompt, first message, "
        "language, voice …). Allow it in the agent's security settings or remove it."
    ),
    "missing_dynamic_variable_transfer": (
        "The agent this conversation was transferred to needs a dynamic variable that was not "
        "sent. Add it with --var NAME=VALUE (or in Settings) and start again."
    ),
    "missing_dynamic_variable": (
        "The agent needs a dynamic variable that was not sent. Add it with --var NAME=VALUE "
        "(or in Settings) and start again."
    ),
    "websocket_disconnect": (
        "The connection to the agent was interrupted. Check your network and start again."
    ),
    "safety_violation": (
        "The agent stopped because the conversation broke its content policy. Start a new "
        "conversation."
    ),
    "llm_timeout": f"The agent's language model took too long to answer. {_TRY_AGAIN}",
    "transport_receive_timeout": (
        "The agent ended the conversation because it heard nothing from you for a while. "
        "Start a new conversation to go on."
    ),
    "asyncio_timeout": f"A step inside the agent service took too long. {_TRY_AGAIN}",
    "http_exception": f"A request the agent made failed. {_TRY_AGAIN}",
    "max_duration_exceeded": (
        "The conversation reached the agent's maximum duration. Start a new one to go on."
    ),
    "llm_error": f"The agent's language model failed to answer. {_TRY_AGAIN}",
    "custom_llm_error": (
        "The agent's custom language model failed to answer. Check that your LLM server is "
        "running and reachable."
    ),
    "cascade_brain_error": (f"All of the agent's language models failed to answer. {_TRY_AGAIN}"),
    "asr_transcription_error": (
        "The agent could not transcribe your speech. Check your microphone and try again."
    ),
    "vad_error": f"The agent's voice activity detection failed. {_TRY_AGAIN}",
    "turn_probability_error": f"The agent's turn detection failed. {_TRY_AGAIN}",
    "tts_cascade_error": f"The agent's voice could not be synthesised. {_TRY_AGAIN}",
    "redis_timeout_error": f"The agent service is overloaded. {_TRY_AGAIN}",
    "unknown_websocket_crash": f"The agent service had an internal error. {_TRY_AGAIN}",
}

_API_ERROR_SENTENCES = {
    "invalid_api_key": (
        "The API key was not accepted. Check the key in Settings (or ELEVENLABS_API_KEY) "
        "and try again."
    ),
    "quota_exceeded": (
        "Your ElevenLabs quota is used up. Enable usage-based billing or wait for the "
        "quota to renew."
    ),
    "too_many_concurrent_requests": (
        "Too many conversations are running at once on this account. Wait for one to end "
        "and try again."
    ),
    "system_busy": "ElevenLabs is busy right now. Try again in a little while.",
    "voice_not_found": "The agent's voice was not found. Check the agent's voice ID.",
    "only_for_creator+": "This voice needs a Creator plan or higher.",
}


def api_error_sentence(code: str | None, status: int | None = None) -> str:
    """A sentence for a REST error, by its code (``invalid_api_key``) or HTTP status."""
    if code is not None and code in _API_ERROR_SENTENCES:
        return _API_ERROR_SENTENCES[code]
    if status == 401:
        return _API_ERROR_SENTENCES["invalid_api_key"]
    if status == 404:
        return "The agent was not found. Check the agent ID."
    if status == 429:
        return _API_ERROR_SENTENCES["system_busy"]
    if status is not None and status >= 500:
        return f"The ElevenLabs service had a problem (HTTP {status}). Try again in a moment."
    detail = f" ({code})" if code else (f" (HTTP {status})" if status is not None else "")
    return f"The request to ElevenLabs failed{detail}."


def server_error_sentence(
    message: str | None, *, reason: str | None = None, error_type: str | None = None
) -> str:
    """A sentence for an ``error`` event: its ``message``, else its ``reason`` (the generic
    sentence the server sends every client), else one for its ``error_type``
    (``convai-protocol.md``, "Close codes and errors")."""
    for text in (message, reason):
        if text and text.strip():
            return _as_sentence(text.strip())
    if error_type is not None and error_type in ERROR_TYPE_SENTENCES:
        return ERROR_TYPE_SENTENCES[error_type]
    return "The agent reported an error it did not explain."


def _as_sentence(text: str) -> str:
    return text if text[-1] in ".!?…" else text + "."


def close_sentence(code: int | None, reason: str | None) -> str:
    """A sentence for a close by the server that was not a normal end, by its close code
    (the contract's ``WebSocketCloseCode``), with the close reason where there is one."""
    reason = (reason or "").strip()
    what = f" ({reason})" if reason else ""
    if code is None or code == ABNORMAL_CLOSURE:
        return "The connection to the agent was lost. Check your network and start again."
    if "maximum duration" in reason.lower():
        return ERROR_TYPE_SENTENCES["max_duration_exceeded"]
    if code == NORMAL_CLOSURE:
        # The service's reason often says just that ("Agent ended conversation").
        said = {"the", "agent", "ended", "conversation"}
        if set(reason.lower().rstrip(".").split()) <= said:
            what = ""
        return f"The agent ended the conversation{what}."
    if code == POLICY_VIOLATION:
        return (
            f"The agent refused the conversation{what}. Check the agent ID, the API key, the "
            "overrides and the dynamic variables."
        )
    if code == PROTOCOL_ERROR:
        return f"The agent service had an operational problem{what}. {_TRY_AGAIN}"
    if code == INTERNAL_ERROR:
        return f"The agent service had an internal error{what}. Try again later."
    if code == MESSAGE_TOO_BIG:
        return (
            "The agent sent a message too large to read (over 16 MB), so the conversation "
            "was ended. Try again in a moment."
        )
    detail = f": {reason}" if reason else ""
    return f"The connection was closed by the server (code {code}{detail})."


def details_for_server_close(
    code: int | None, reason: str | None, *, agent_ended: bool = False
) -> DisconnectDetails:
    """Disconnect details for a close the client did not ask for."""
    if agent_ended or code == NORMAL_CLOSURE:
        return DisconnectDetails(
            DisconnectReason.AGENT, close_sentence(NORMAL_CLOSURE, reason), code, reason
        )
    return DisconnectDetails(DisconnectReason.ERROR, close_sentence(code, reason), code, reason)


def details_for_user_end() -> DisconnectDetails:
    return DisconnectDetails(
        DisconnectReason.USER, "You ended the conversation.", NORMAL_CLOSURE, USER_ENDED_REASON
    )
