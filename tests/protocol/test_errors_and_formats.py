"""Sentences for users, and the protocol's audio formats."""

from __future__ import annotations

import pytest

from voicedesk.protocol.catalog import ERROR_TYPES
from voicedesk.protocol.errors import (
    ERROR_TYPE_SENTENCES,
    DisconnectReason,
    api_error_sentence,
    close_sentence,
    details_for_server_close,
    details_for_user_end,
    server_error_sentence,
)
from voicedesk.protocol.formats import (
    ALL_FORMATS,
    AudioFormat,
    Encoding,
    UnsupportedFormatError,
    parse_audio_format,
)


@pytest.mark.parametrize(
    ("code", "status", "words"),
    [
        ("invalid_api_key", 401, "API key was not accepted"),
        (None, 401, "API key was not accepted"),
        ("quota_exceeded", 401, "quota is used up"),
        ("too_many_concurrent_requests", 429, "Too many conversations"),
        ("system_busy", 429, "busy"),
        (None, 429, "busy"),
        ("voice_not_found", 400, "voice was not found"),
        ("only_for_creator+", 403, "Creator plan"),
        (None, 404, "agent was not found"),
        (None, 503, "HTTP 503"),
        ("weird_code", 400, "(weird_code)"),
        (None, 418, "(HTTP 418)"),
        (None, None, "request to ElevenLabs failed."),
    ],
)
def test_api_errors_have_sentences(code: str | None, status: int | None, words: str) -> None:
    assert words in api_error_sentence(code, status)


@pytest.mark.parametrize(
    ("message", "reason", "error_type", "said"),
    [
        # message first, then the generic reason, then a sentence for the type
        ("Disk on fire", "Internal error", "llm_error", "Disk on fire."),
        (None, "The LLM did not answer in time", "llm_timeout", "The LLM did not answer in time."),
        ("  ", "Limit reached!", None, "Limit reached!"),
        (None, None, "llm_timeout", ERROR_TYPE_SENTENCES["llm_timeout"]),
        (None, None, "brand_new", "The agent reported an error it did not explain."),
        (None, None, None, "The agent reported an error it did not explain."),
    ],
)
def test_error_event_sentence_prefers_message_then_reason_then_type(
    message: str | None, reason: str | None, error_type: str | None, said: str
) -> None:
    assert server_error_sentence(message, reason=reason, error_type=error_type) == said


def test_every_contract_error_type_has_a_sentence_that_says_what_to_do() -> None:
    assert set(ERROR_TYPE_SENTENCES) == set(ERROR_TYPES)
    assert len(ERROR_TYPES) == 26
    for error_type, sentence in ERROR_TYPE_SENTENCES.items():
        assert sentence.endswith("."), error_type
        assert error_type not in sentence, "a sentence, not the code"
        # Each tells what to do next: try, check, start, update, choose, allow, add.
        assert any(
            verb in sentence
            for verb in ("Try", "Check", "Start", "Update", "Choose", "Allow", "Add", "start")
        ), error_type


@pytest.mark.parametrize(
    ("code", "reason", "said"),
    [
        (1000, "", "The agent ended the conversation."),
        (1000, "Agent ended conversation", "The agent ended the conversation."),
        (
            1000,
            "Goodbye from the shop",
            "The agent ended the conversation (Goodbye from the shop).",
        ),
        (
            1000,
            "Conversation has exceeded maximum duration",
            ERROR_TYPE_SENTENCES["max_duration_exceeded"],
        ),
        (1002, None, "The agent service had an operational problem. Try again in a moment."),
        (
            1002,
            "LLM timeout",
            "The agent service had an operational problem (LLM timeout). Try again in a moment.",
        ),
        (
            1008,
            "",
            "The agent refused the conversation. Check the agent ID, the API key, the "
            "overrides and the dynamic variables.",
        ),
        (
            1008,
            "Invalid message received",
            "The agent refused the conversation (Invalid "
            "message received). Check the agent ID, the API key, the overrides and the dynamic "
            "variables.",
        ),
        (1011, "", "The agent service had an internal error. Try again later."),
        (1011, "boom", "The agent service had an internal error (boom). Try again later."),
        (
            1009,
            "frame too big",
            "The agent sent a message too large to read (over 16 MB), so the conversation "
            "was ended. Try again in a moment.",
        ),
        (4001, "custom", "The connection was closed by the server (code 4001: custom)."),
        (4001, "", "The connection was closed by the server (code 4001)."),
        (None, None, "The connection to the agent was lost. Check your network and start again."),
        (1006, "", "The connection to the agent was lost. Check your network and start again."),
    ],
)
def test_each_close_code_has_its_sentence(code: int | None, reason: str | None, said: str) -> None:
    assert close_sentence(code, reason) == said


def test_details() -> None:
    assert details_for_server_close(1000, "").reason is DisconnectReason.AGENT
    assert details_for_server_close(4000, "x", agent_ended=True).reason is DisconnectReason.AGENT
    assert details_for_server_close(1011, "x").is_error
    user = details_for_user_end()
    assert user.reason is DisconnectReason.USER
    assert user.close_code == 1000


@pytest.mark.parametrize(
    ("name", "encoding", "rate"),
    [
        ("pcm_8000", Encoding.PCM_S16LE, 8000),
        ("pcm_16000", Encoding.PCM_S16LE, 16000),
        ("pcm_22050", Encoding.PCM_S16LE, 22050),
        ("pcm_24000", Encoding.PCM_S16LE, 24000),
        ("pcm_44100", Encoding.PCM_S16LE, 44100),
        ("pcm_48000", Encoding.PCM_S16LE, 48000),
        ("ulaw_8000", Encoding.ULAW, 8000),
    ],
)
def test_all_seven_formats(name: str, encoding: Encoding, rate: int) -> None:
    fmt = parse_audio_format(name)
    assert fmt == AudioFormat(encoding, rate)
    assert fmt.name == name == str(fmt)
    assert fmt in ALL_FORMATS


@pytest.mark.parametrize(
    "name", ["mp3_44100_128", "pcm_12345", "ulaw_16000", "pcm", "opus_48000", ""]
)
def test_unsupported_formats(name: str) -> None:
    with pytest.raises(UnsupportedFormatError):
        parse_audio_format(name)


def test_format_arithmetic() -> None:
    pcm = parse_audio_format("pcm_16000")
    assert pcm.bytes_per_sample == 2
    assert pcm.duration_ms(32000) == 1000.0
    assert pcm.bytes_for_ms(20) == 640
    ulaw = parse_audio_format("ulaw_8000")
    assert ulaw.bytes_per_sample == 1
    assert ulaw.duration_ms(8000) == 1000.0
    assert ulaw.bytes_for_ms(25) == 200
