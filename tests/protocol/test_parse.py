"""Parsing server frames and serializing client messages (convai-protocol.md)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicedesk.protocol.catalog import SERVER_MESSAGES
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
    ClientToolCall,
    ClientToolResult,
    ConfigOverrides,
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
    MultimodalMessage,
    Ping,
    Pong,
    RichContent,
    ServerError,
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
from voicedesk.protocol.parse import parse_server_frame, serialize, to_json_dict


def frame(obj: Any) -> str:
    return json.dumps(obj)


AUDIO = base64.b64encode(b"\x01\x02\x03\x04").decode()

# Each server message of the reference, as sent, and what it parses into.
REFERENCE_MESSAGES = [
    (
        {
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": "conv_123",
                "agent_output_audio_format": "pcm_44100",
                "user_input_audio_format": "pcm_16000",
            },
        },
        ConversationInitiationMetadata("conv_123", "pcm_44100", "pcm_16000"),
    ),
    (
        {
            "type": "audio",
            "audio_event": {
                "audio_base_64": AUDIO,
                "event_id": 3,
                "alignment": {
                    "chars": ["H", "i"],
                    "char_start_times_ms": [0, 80],
                    "char_durations_ms": [80, 90],
                },
            },
        },
        AgentAudio(b"\x01\x02\x03\x04", 3, Alignment(("H", "i"), (0, 80), (80, 90))),
    ),
    (
        {
            "type": "agent_response",
            "agent_response_event": {"agent_response": "Hi!", "event_id": 3},
        },
        AgentResponse("Hi!", 3),
    ),
    (
        {
            "type": "agent_response_correction",
            "agent_response_correction_event": {
                "original_agent_response": "a",
                "corrected_agent_response": "b",
                "event_id": 3,
            },
        },
        AgentResponseCorrection("a", "b", 3),
    ),
    (
        {
            "type": "agent_chat_response_part",
            "text_response_part": {"text": "Hel", "type": "delta", "event_id": 3},
        },
        AgentChatResponsePart("Hel", "delta", 3),
    ),
    (
        {
            "type": "user_transcript",
            "user_transcription_event": {"user_transcript": "hello", "event_id": 2},
        },
        UserTranscript("hello", 2),
    ),
    (
        {
            "type": "tentative_user_transcript",
            "tentative_user_transcription_event": {"user_transcript": "hel", "event_id": 2},
        },
        TentativeUserTranscript("hel", 2),
    ),
    (
        {
            "type": "internal_tentative_agent_response",
            "tentative_agent_response_internal_event": {"tentative_agent_response": "thinking"},
        },
        TentativeAgentResponse("thinking"),
    ),
    ({"type": "interruption", "interruption_event": {"event_id": 4}}, Interruption(4)),
    ({"type": "ping", "ping_event": {"event_id": 12345, "ping_ms": 50}}, Ping(12345, 50)),
    ({"type": "ping", "ping_event": {"event_id": 7, "ping_ms": None}}, Ping(7, None)),
    (
        {
            "type": "client_tool_call",
            "client_tool_call": {
                "tool_name": "changeBrightness",
                "tool_call_id": "call_1",
                "parameters": {"brightness": 0.5},
                "event_id": 5,
            },
        },
        ClientToolCall("changeBrightness", "call_1", {"brightness": 0.5}, 5),
    ),
    ({"type": "vad_score", "vad_score_event": {"vad_score": 0.95}}, VadScore(0.95)),
    (
        {
            "type": "agent_tool_response",
            "agent_tool_response": {
                "tool_name": "end_call",
                "tool_call_id": "t1",
                "tool_type": "system",
                "is_error": False,
                "event_id": 6,
            },
        },
        AgentToolResponse("end_call", "t1", "system", False, 6),
    ),
    (
        {
            "type": "agent_tool_response_full_payload",
            "agent_tool_response_full_payload": {
                "tool_name": "get_weather",
                "tool_call_id": "t2",
                "tool_type": "webhook",
                "is_error": False,
                "is_called": True,
                "is_blocked": False,
                "event_id": 7,
                "full_tool_result": '{"temp": 14}',
                "truncated": True,
            },
        },
        AgentToolResponse(
            "get_weather", "t2", "webhook", False, 7, True, False, '{"temp": 14}', True
        ),
    ),
    (
        {
            "type": "agent_tool_request",
            "agent_tool_request": {
                "tool_name": "get_weather",
                "tool_call_id": "t2",
                "tool_type": "webhook",
                "event_id": 7,
            },
        },
        AgentToolRequest("get_weather", "t2", "webhook", 7),
    ),
    (
        {
            "type": "error",
            "error_event": {
                "code": 1002,
                "message": "slow",
                "reason": "Timeout",
                "error_type": "llm_timeout",
                "debug_message": "llm took 21 s",
                "details": {"model": "x"},
            },
        },
        ServerError(1002, "slow", "Timeout", "llm_timeout", "llm took 21 s", {"model": "x"}),
    ),
    (
        {"type": "error", "error_event": {"code": 1008, "reason": "Invalid message"}},
        ServerError(1008, None, "Invalid message"),
    ),
    (
        {
            "type": "agent_reasoning_response_part",
            "reasoning_response_part": {"text": "hm", "type": "delta", "event_id": "r1"},
        },
        AgentReasoningResponsePart("hm", "delta", "r1"),
    ),
    (
        {
            "type": "rich_content",
            "rich_content": {
                "rich_content_id": "rc1",
                "component": "item_card",
                "props": {"title": "Lamp", "price": 30, "details": {"description": "Warm"}},
                "event_id": 8,
            },
        },
        RichContent(
            "rc1",
            "item_card",
            {"title": "Lamp", "price": 30, "details": {"description": "Warm"}},
            8,
        ),
    ),
    (
        {
            "type": "mcp_tool_call",
            "mcp_tool_call": {
                "service_id": "svc",
                "tool_call_id": "m1",
                "tool_name": "send_email",
                "tool_description": None,
                "parameters": {"to": "bob"},
                "timestamp": "2026-11-26T10:00:00Z",
                "state": "awaiting_approval",
                "approval_timeout_secs": 30,
            },
        },
        McpToolCall(
            "svc",
            "m1",
            "send_email",
            "awaiting_approval",
            {"to": "bob"},
            "2026-11-26T10:00:00Z",
            None,
            30,
        ),
    ),
    (
        {
            "type": "mcp_tool_call",
            "mcp_tool_call": {
                "service_id": "svc",
                "tool_call_id": "m1",
                "tool_name": "send_email",
                "parameters": {},
                "timestamp": "t",
                "state": "success",
                "result": [{"type": "text", "text": "sent"}, {"type": "image"}, 5],
            },
        },
        McpToolCall(
            "svc",
            "m1",
            "send_email",
            "success",
            {},
            "t",
            result=({"type": "text", "text": "sent"}, {"type": "image"}),
        ),
    ),
    (
        {
            "type": "mcp_connection_status",
            "mcp_connection_status": {
                "integrations": [
                    {
                        "integration_id": "i1",
                        "integration_type": "mcp_server",
                        "is_connected": False,
                        "tool_count": 3,
                    }
                ]
            },
        },
        McpConnectionStatus((McpIntegrationStatus("i1", "mcp_server", False, 3),)),
    ),
    (
        {
            "type": "context_usage",
            "context_usage_event": {
                "event_id": 9,
                "model": "gpt",
                "context_tokens": 10,
                "context_limit_tokens": 100,
            },
        },
        ContextUsage(9, "gpt", 10, 100),
    ),
    (
        {"type": "asr_initiation_metadata", "asr_initiation_metadata_event": {"model": "s"}},
        AsrInitiationMetadata({"model": "s"}),
    ),
    ({"type": "guardrail_triggered"}, GuardrailTriggered()),
    (
        {
            "type": "internal_turn_probability",
            "turn_probability_internal_event": {"turn_probability": 0.25},
        },
        TurnProbability(0.25),
    ),
    (
        {"type": "agent_typing", "agent_typing_event": {"is_typing": True, "duration_ms": 500}},
        AgentTyping(True, 500),
    ),
    ({"type": "external_agent_connected"}, ExternalAgentConnected()),
    ({"type": "external_agent_disconnected"}, ExternalAgentDisconnected()),
]


def test_the_examples_cover_every_server_message_of_the_catalog() -> None:
    covered = {m["type"] for m, _ in REFERENCE_MESSAGES}
    assert covered == {spec.key for spec in SERVER_MESSAGES}


def test_rich_content_is_shown_as_its_text_and_mcp_results_as_theirs() -> None:
    rich = RichContent("r", "card", {"title": "Lamp", "items": ["x", {"label": "Buy"}], "n": 1}, 1)
    assert rich.text == "Lamp\nBuy"
    assert RichContent("r", "card", {"image_url": "x"}, 1).text == ""
    deep: dict[str, Any] = {"title": "top"}
    node = deep
    for _ in range(8):
        node["child"] = {"title": "deeper"}
        node = node["child"]
    assert RichContent("r", "card", deep, 1).text == "top\ndeeper"
    call = McpToolCall("s", "c", "t", "success", {}, "", result=({"text": "a"}, {"type": "img"}))
    assert call.result_text == "a\n[img]"


@pytest.mark.parametrize(("message", "expected"), REFERENCE_MESSAGES)
def test_every_reference_server_message_parses(message: dict[str, Any], expected: object) -> None:
    assert parse_server_frame(frame(message)) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # Absent optional fields take the protocol's defaults.
        (
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {"conversation_id": "c"},
            },
            ConversationInitiationMetadata("c", "pcm_16000", "pcm_16000"),
        ),
        ({"type": "audio", "audio_event": {"audio_base_64": ""}}, AgentAudio(b"", None, None)),
        ({"type": "interruption"}, Interruption(None)),
        ({"type": "ping", "ping_event": {"event_id": 1}}, Ping(1, None)),
        (
            {
                "type": "client_tool_call",
                "client_tool_call": {"tool_name": "t", "tool_call_id": "c"},
            },
            ClientToolCall("t", "c", {}, None),
        ),
        (
            {"type": "agent_tool_response", "agent_tool_response": {"tool_name": "end_call"}},
            AgentToolResponse("end_call", "", "", False, None),
        ),
        (
            {
                "type": "agent_tool_response",
                "agent_tool_response": {"tool_name": "end_call", "is_error": None},
            },
            AgentToolResponse("end_call", "", "", False, None),
        ),
        (
            {"type": "agent_reasoning_response_part", "reasoning_response_part": {"event_id": 4}},
            AgentReasoningResponsePart("", "delta", "4"),
        ),
        (
            {"type": "agent_reasoning_response_part", "reasoning_response_part": {"type": "stop"}},
            AgentReasoningResponsePart("", "stop", ""),
        ),
        (
            {
                "type": "mcp_tool_call",
                "mcp_tool_call": {"tool_call_id": "m", "tool_name": "t", "state": "loading"},
            },
            McpToolCall("", "m", "t", "loading", {}, ""),
        ),
        ({"type": "asr_initiation_metadata"}, AsrInitiationMetadata({})),
        (
            {"type": "agent_chat_response_part", "text_response_part": {"type": "start"}},
            AgentChatResponsePart("", "start", None),
        ),
        ({"type": "error", "message": "flat error"}, ServerError(None, "flat error")),
        ({"type": "error", "error_event": {"message": 5, "code": True}}, ServerError(None)),
        ({"type": "error", "error_event": {"code": 1002, "details": [1]}}, ServerError(1002)),
        ({"type": "ping", "ping_event": {"event_id": 2.0}}, Ping(2, None)),
    ],
)
def test_absent_optional_fields_are_tolerated(message: dict[str, Any], expected: object) -> None:
    assert parse_server_frame(frame(message)) == expected


@pytest.mark.parametrize(
    "alignment",
    [
        "not an object",
        {"chars": "Hi", "char_start_times_ms": [0], "char_durations_ms": [1]},
        {"chars": [1, 2], "char_start_times_ms": [0, 1], "char_durations_ms": [1, 1]},
        {"chars": ["H"], "char_start_times_ms": ["0"], "char_durations_ms": [1]},
    ],
)
def test_a_broken_alignment_is_dropped_but_the_audio_kept(alignment: object) -> None:
    event = parse_server_frame(
        frame({"type": "audio", "audio_event": {"audio_base_64": AUDIO, "alignment": alignment}})
    )
    assert event == AgentAudio(b"\x01\x02\x03\x04", None, None)


def test_unknown_types_are_reported_as_unknown_not_errors() -> None:
    for msg_type in ("agent_dances", "future_event", "Audio"):
        assert parse_server_frame(frame({"type": msg_type, "x": 1})) == UnknownEvent(msg_type)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\x01binary", "binary frame"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"no_type": 1}', "no message type"),
        ('{"type": 5}', "no message type"),
        (frame({"type": "audio"}), "audio_event"),
        (frame({"type": "audio", "audio_event": {"audio_base_64": "***"}}), "base64"),
        (frame({"type": "audio", "audio_event": {"audio_base_64": 5}}), "audio_base_64"),
        (
            frame({"type": "audio", "audio_event": {"audio_base_64": "", "event_id": "x"}}),
            "event_id",
        ),
        (
            frame({"type": "audio", "audio_event": {"audio_base_64": "", "event_id": 1.5}}),
            "integer",
        ),
        (
            frame({"type": "audio", "audio_event": {"audio_base_64": "", "event_id": True}}),
            "number",
        ),
        (frame({"type": "ping", "ping_event": {}}), "event_id"),
        (frame({"type": "ping", "ping_event": {"event_id": 1, "ping_ms": "fast"}}), "ping_ms"),
        (frame({"type": "interruption", "interruption_event": [1]}), "interruption_event"),
        (frame({"type": "vad_score", "vad_score_event": {"vad_score": "high"}}), "vad_score"),
        (frame({"type": "vad_score", "vad_score_event": {"vad_score": True}}), "vad_score"),
        (
            frame(
                {
                    "type": "client_tool_call",
                    "client_tool_call": {"tool_name": "t", "tool_call_id": "c", "parameters": [1]},
                }
            ),
            "parameters",
        ),
        (
            frame({"type": "agent_chat_response_part", "text_response_part": {"type": "middle"}}),
            "middle",
        ),
        (
            frame(
                {
                    "type": "agent_tool_response",
                    "agent_tool_response": {"tool_name": "x", "is_error": "no"},
                }
            ),
            "is_error",
        ),
        (
            frame({"type": "agent_response", "agent_response_event": {"agent_response": None}}),
            "agent_response",
        ),
        ('{"type": "ping", "ping_event": {"event_id": NaN}}', "integer"),
        (
            frame({"type": "mcp_tool_call", "mcp_tool_call": {"state": "paused"}}),
            "paused",
        ),
        (
            frame(
                {
                    "type": "mcp_tool_call",
                    "mcp_tool_call": {
                        "state": "success",
                        "tool_call_id": "m",
                        "tool_name": "t",
                        "result": "ok",
                    },
                }
            ),
            "result",
        ),
        (
            frame(
                {
                    "type": "mcp_tool_call",
                    "mcp_tool_call": {
                        "state": "failure",
                        "tool_call_id": "m",
                        "tool_name": "t",
                        "error_message": 5,
                    },
                }
            ),
            "error_message",
        ),
        (
            frame(
                {
                    "type": "mcp_tool_call",
                    "mcp_tool_call": {
                        "state": "loading",
                        "tool_call_id": "m",
                        "tool_name": "t",
                        "parameters": 3,
                    },
                }
            ),
            "parameters",
        ),
        (frame({"type": "mcp_connection_status", "mcp_connection_status": {}}), "integrations"),
        (
            frame(
                {"type": "mcp_connection_status", "mcp_connection_status": {"integrations": ["x"]}}
            ),
            "integration",
        ),
        (
            frame({"type": "context_usage", "context_usage_event": {"model": "m"}}),
            "context_tokens",
        ),
        (frame({"type": "agent_typing", "agent_typing_event": {"is_typing": "yes"}}), "is_typing"),
        (
            frame({"type": "internal_turn_probability", "turn_probability_internal_event": {}}),
            "turn_probability",
        ),
        (
            frame(
                {
                    "type": "agent_reasoning_response_part",
                    "reasoning_response_part": {"type": "later"},
                }
            ),
            "later",
        ),
    ],
)
def test_malformed_frames_become_typed_errors(raw: str | bytes, reason: str) -> None:
    event = parse_server_frame(raw)
    assert isinstance(event, MalformedFrame)
    assert reason in event.reason
    assert len(event.excerpt) <= 120


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    event = parse_server_frame("[" * 100_000 + "]" * 100_000)
    assert isinstance(event, MalformedFrame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
message_types = st.sampled_from([*(spec.key for spec in SERVER_MESSAGES), "something_new"])


@given(message_types, st.dictionaries(st.text(max_size=40), json_values, max_size=4))
def test_random_messages_never_raise(msg_type: str, body: dict[str, Any]) -> None:
    body["type"] = msg_type
    for key in list(body):
        if key != "type":
            body[key.replace("x", "_event")] = body.pop(key)
    parse_server_frame(json.dumps(body))


@given(st.binary(max_size=64) | st.text(max_size=64))
def test_random_frames_never_raise(raw: str | bytes) -> None:
    parse_server_frame(raw)


# ------------------------------------------------------------------ client -> server


def test_initiation_with_everything_set() -> None:
    msg = InitiationClientData(
        dynamic_variables={"platform": "linux", "n": 3, "ok": True},
        overrides=ConfigOverrides(
            prompt="Be brief.",
            llm="gemini-2.0-flash",
            first_message="Yo",
            language="de",
            voice_id="v1",
            tts_speed=1.2,
            tts_stability=0.4,
            tts_similarity_boost=0.9,
            asr_keywords=("voicedesk", "ElevenLabs"),
            text_only=True,
            client_events=("audio", "agent_chat_response_part"),
        ),
        user_id="u1",
        source="voicedesk",
        version="1.2.3",
        custom_llm_extra_body={"temperature": 0.2},
    )
    assert to_json_dict(msg) == {
        "type": "conversation_initiation_client_data",
        "conversation_config_override": {
            "agent": {
                "prompt": {"prompt": "Be brief.", "llm": "gemini-2.0-flash"},
                "first_message": "Yo",
                "language": "de",
            },
            "tts": {"voice_id": "v1", "speed": 1.2, "stability": 0.4, "similarity_boost": 0.9},
            "asr": {"keywords": ["voicedesk", "ElevenLabs"]},
            "conversation": {
                "text_only": True,
                "client_events": ["audio", "agent_chat_response_part"],
            },
        },
        "custom_llm_extra_body": {"temperature": 0.2},
        "dynamic_variables": {"platform": "linux", "n": 3, "ok": True},
        "user_id": "u1",
        "source_info": {"source": "voicedesk", "version": "1.2.3"},
    }


def test_initiation_omits_unset_keys() -> None:
    assert to_json_dict(InitiationClientData(dynamic_variables={"platform": "macos"})) == {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"platform": "macos"},
        "source_info": {"source": "voicedesk", "version": "0.0.0"},
    }


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (UserAudioChunk(b"\x00\x01"), {"user_audio_chunk": "AAE="}),
        (Pong(12345), {"type": "pong", "event_id": 12345}),
        (
            ClientToolResult("call_1", "0.82", False),
            {
                "type": "client_tool_result",
                "tool_call_id": "call_1",
                "result": "0.82",
                "is_error": False,
            },
        ),
        (UserMessage("hello"), {"type": "user_message", "text": "hello"}),
        (
            ContextualUpdate("User opened settings"),
            {"type": "contextual_update", "text": "User opened settings"},
        ),
        (UserActivity(), {"type": "user_activity"}),
        (Feedback("like", 7), {"type": "feedback", "score": "like", "event_id": 7}),
        (Feedback("dislike", 8), {"type": "feedback", "score": "dislike", "event_id": 8}),
        (Feedback(None, 8), {"type": "feedback", "score": None, "event_id": 8}),
        (
            ContextualUpdate("Cart: 2 items", "cart"),
            {"type": "contextual_update", "text": "Cart: 2 items", "context_id": "cart"},
        ),
        (
            McpToolApprovalResult("m1", True),
            {"type": "mcp_tool_approval_result", "tool_call_id": "m1", "is_approved": True},
        ),
        (
            MultimodalMessage("what is in it?", "file_1"),
            {
                "type": "multimodal_message",
                "text": {"type": "user_message", "text": "what is in it?"},
                "file": {"type": "file_input", "file_id": "file_1"},
            },
        ),
        (MultimodalMessage(), {"type": "multimodal_message"}),
    ],
)
def test_client_messages_serialize_as_the_reference(msg: object, expected: dict[str, Any]) -> None:
    assert json.loads(serialize(msg)) == expected  # type: ignore[arg-type]


def test_audio_chunk_has_no_type_key() -> None:
    assert "type" not in json.loads(serialize(UserAudioChunk(b"abc")))


def test_non_ascii_text_survives() -> None:
    assert json.loads(serialize(UserMessage("Grüße 👋"))) == {
        "type": "user_message",
        "text": "Grüße 👋",
    }
