"""Sentences for users, and the protocol's audio formats."""

from __future__ import annotations

import pytest

from voicedesk.protocol.errors import (
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
    ("message", "error_type", "words"),
    [
        ("", "transport_receive_timeout", "heard nothing"),
        ("", "llm_timeout", "language model"),
        ("", "tts_timeout", "voice service"),
        ("", "asr_timeout", "speech recognition"),
        ("", "max_duration_exceeded", "maximum duration"),
        ("", "missing_dynamic_variable", "--var"),
        ("", "override_error", "overrides"),
        ("disk on fire", "brand_new", "The agent reported an error: disk on fire"),
        ("", None, "The agent reported an error."),
    ],
)
def test_server_errors_have_sentences(message: str, error_type: str | None, words: str) -> None:
    assert words in server_error_sentence(message, error_type)


def test_close_sentence_without_reason_for_protocol_error() -> None:
    assert close_sentence(1002, None) == (
        "The agent service had an operational problem. Try again in a moment."
    )
    assert "the request was not accepted" in close_sentence(1008, "")


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
