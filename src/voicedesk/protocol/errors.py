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

    @property
    def is_error(self) -> bool:
        return self.reason is DisconnectReason.ERROR


_ERROR_TYPE_SENTENCES = {
    "transport_receive_timeout": (
        "The agent ended the conversation because it heard nothing from you for a while. "
        "Start a new conversation to go on."
    ),
    "llm_timeout": "The agent's language model took too long to answer. Try again in a moment.",
    "tts_timeout": "The agent's voice service took too long to answer. Try again in a moment.",
    "asr_timeout": "The agent's speech recognition took too long to answer. Try again.",
    "max_duration_exceeded": (
        "The conversation reached the agent's maximum duration. Start a new one to go on."
    ),
    "missing_dynamic_variable": (
        "The agent needs a dynamic variable that was not sent. Add it with --var NAME=VALUE "
        "(or in Settings) and start again."
    ),
    "override_error": (
        "The agent does not allow one of the overrides that were sent (first message, "
        "language or voice). Allow it in the agent's security settings or remove it."
    ),
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


def server_error_sentence(message: str, error_type: str | None) -> str:
    """A sentence for an ``error`` event."""
    if error_type is not None and error_type in _ERROR_TYPE_SENTENCES:
        return _ERROR_TYPE_SENTENCES[error_type]
    if message:
        return f"The agent reported an error: {message}"
    return "The agent reported an error."


def close_sentence(code: int | None, reason: str | None) -> str:
    """A sentence for a close by the server that was not a normal end."""
    reason = (reason or "").strip()
    if code is None or code == ABNORMAL_CLOSURE:
        return "The connection to the agent was lost. Check your network and start again."
    if "maximum duration" in reason.lower():
        return _ERROR_TYPE_SENTENCES["max_duration_exceeded"]
    if code == POLICY_VIOLATION:
        what = reason or "the request was not accepted"
        return (
            f"The agent refused the conversation: {what}. Check the agent ID, the API key "
            "and the settings."
        )
    if code == PROTOCOL_ERROR:
        what = f" ({reason})" if reason else ""
        return f"The agent service had an operational problem{what}. Try again in a moment."
    if code == INTERNAL_ERROR:
        what = f" ({reason})" if reason else ""
        return f"The agent service had an internal error{what}. Try again later."
    if reason:
        return f"The connection was closed by the server: {reason}"
    return "The connection was closed by the server."


def details_for_server_close(
    code: int | None, reason: str | None, *, agent_ended: bool = False
) -> DisconnectDetails:
    """Disconnect details for a close the client did not ask for."""
    if agent_ended or code == NORMAL_CLOSURE:
        return DisconnectDetails(
            DisconnectReason.AGENT, "The agent ended the conversation.", code, reason
        )
    return DisconnectDetails(DisconnectReason.ERROR, close_sentence(code, reason), code, reason)


def details_for_user_end() -> DisconnectDetails:
    return DisconnectDetails(
        DisconnectReason.USER, "You ended the conversation.", NORMAL_CLOSURE, USER_ENDED_REASON
    )
