"""The message catalog: lookups and the facts the rest of the client relies on."""

from __future__ import annotations

from voicedesk.protocol.catalog import (
    ALWAYS_SENT_EVENTS,
    CLIENT_EVENT_TYPES,
    CLIENT_MESSAGES,
    DEFAULT_CLIENT_EVENTS,
    SERVER_MESSAGES,
    Direction,
    message_key,
    message_spec,
)


def test_counts_match_the_contract() -> None:
    # 27 server -> client and 10 client -> server types (agent.asyncapi.yaml).
    assert len(SERVER_MESSAGES) == 27
    assert len(CLIENT_MESSAGES) == 10
    assert len({m.key for m in SERVER_MESSAGES}) == 27


def test_default_events_are_the_contracts_list() -> None:
    assert set(DEFAULT_CLIENT_EVENTS) == {
        "audio",
        "interruption",
        "agent_response",
        "user_transcript",
        "tentative_user_transcript",
        "conversation_initiation_metadata",
        "ping",
    }
    assert set(ALWAYS_SENT_EVENTS) <= {m.key for m in SERVER_MESSAGES}
    assert "error" not in CLIENT_EVENT_TYPES
    assert len(CLIENT_EVENT_TYPES) == 26


def test_lookups_by_wire_type() -> None:
    audio = message_spec(Direction.SERVER, "audio")
    assert audio is not None
    assert audio.body is not None
    assert audio.body.name == "audio_event"
    chunk = message_spec(Direction.CLIENT, "user_audio_chunk")
    assert chunk is not None
    assert chunk.type is None
    assert chunk.key == "user_audio_chunk"
    assert chunk.body is None
    assert message_spec(Direction.CLIENT, "audio") is None
    guardrail = message_spec(Direction.SERVER, "guardrail_triggered")
    assert guardrail is not None
    assert guardrail.body is None
    assert message_key({"type": "pong", "event_id": 1}) == "pong"
    assert message_key({"user_audio_chunk": "AA=="}) == "user_audio_chunk"
    assert message_key({"hello": 1}) is None


def test_nullable_fields() -> None:
    error = message_spec(Direction.SERVER, "error")
    assert error is not None
    assert error.body is not None
    fields = {f.name: f for f in error.body.fields}
    assert fields["reason"].nullable
    assert not fields["code"].nullable
    assert fields["code"].required
