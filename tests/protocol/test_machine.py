"""The conversation state machine, fed frame by frame."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.frames import mcp_tool_call
from voicedesk.protocol.errors import DisconnectReason
from voicedesk.protocol.events import (
    AgentAudio,
    AgentResponse,
    AgentToolResponse,
    ClientToolCall,
    InitiationClientData,
    Interruption,
    MalformedFrame,
    ServerError,
    UnknownEvent,
    VadScore,
)
from voicedesk.protocol.formats import parse_audio_format
from voicedesk.protocol.machine import (
    CanSendFeedbackChanged,
    CloseRequested,
    Connected,
    ConversationCore,
    Disconnected,
    ErrorReported,
    FeedbackChanged,
    LatencyMeasured,
    McpApprovalClosed,
    McpApprovalRequested,
    MetadataReceived,
    Mode,
    ModeChanged,
    Status,
    StatusChanged,
)

INIT = InitiationClientData(dynamic_variables={"platform": "linux"})


def metadata(out: str = "pcm_44100", inp: str = "pcm_16000", cid: str = "conv_1") -> str:
    return json.dumps(
        {
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": cid,
                "agent_output_audio_format": out,
                "user_input_audio_format": inp,
            },
        }
    )


def audio(event_id: int | None, data: bytes = b"\x00\x01") -> str:
    body: dict[str, Any] = {"audio_base_64": base64.b64encode(data).decode()}
    if event_id is not None:
        body["event_id"] = event_id
    return json.dumps({"type": "audio", "audio_event": body})


def agent_response(text: str, event_id: int | None) -> str:
    return json.dumps(
        {
            "type": "agent_response",
            "agent_response_event": {"agent_response": text, "event_id": event_id},
        }
    )


def interruption(event_id: int | None) -> str:
    return json.dumps({"type": "interruption", "interruption_event": {"event_id": event_id}})


def tool_call(call_id: str, name: str = "getBatteryLevel") -> str:
    return json.dumps(
        {
            "type": "client_tool_call",
            "client_tool_call": {"tool_name": name, "tool_call_id": call_id, "parameters": {}},
        }
    )


def sent(core: ConversationCore) -> list[dict[str, Any]]:
    return [json.loads(f) for f in core.data_to_send()]


def connected_core() -> ConversationCore:
    core = ConversationCore()
    core.start(INIT)
    core.connection_opened()
    core.receive_frame(metadata())
    core.audio_ready()
    core.data_to_send()
    core.events_received()
    return core


def test_happy_path_status_and_initiation_first() -> None:
    core = ConversationCore()
    assert core.status is Status.DISCONNECTED
    core.start(INIT)
    assert core.status is Status.CONNECTING
    assert core.events_received() == [StatusChanged(Status.CONNECTING)]
    core.connection_opened()
    frames = sent(core)
    assert frames[0]["type"] == "conversation_initiation_client_data"
    assert frames[0]["dynamic_variables"] == {"platform": "linux"}
    core.receive_frame(metadata())
    assert core.events_received() == [
        MetadataReceived("conv_1", parse_audio_format("pcm_44100"), parse_audio_format("pcm_16000"))
    ]
    assert core.status is Status.CONNECTING  # audio is not running yet
    core.audio_ready()
    assert core.status is Status.CONNECTED
    assert core.events_received() == [StatusChanged(Status.CONNECTED), Connected("conv_1")]
    assert core.conversation_id == "conv_1"
    assert core.agent_output_format == parse_audio_format("pcm_44100")
    assert core.user_input_format == parse_audio_format("pcm_16000")


def test_start_twice_is_a_programming_error() -> None:
    core = connected_core()
    with pytest.raises(RuntimeError, match="connected"):
        core.start(INIT)


def test_nothing_is_sent_before_connected() -> None:
    core = ConversationCore()
    assert not core.send_user_message("hi")
    core.start(INIT)
    assert not core.send_user_audio(b"\x00\x00")
    assert not core.send_user_activity()
    assert not core.send_contextual_update("ctx")
    assert not core.send_feedback(True)
    core.connection_opened()
    assert [f["type"] for f in sent(core)] == ["conversation_initiation_client_data"]


def test_connection_opened_and_audio_ready_are_ignored_out_of_order() -> None:
    core = ConversationCore()
    core.connection_opened()
    core.audio_ready()
    assert core.data_to_send() == []
    assert core.status is Status.DISCONNECTED
    core.start(INIT)
    core.audio_ready()  # no metadata yet
    assert core.status is Status.CONNECTING


def test_user_messages_once_connected() -> None:
    core = connected_core()
    assert core.send_user_message("hello")
    assert core.send_contextual_update("User opened settings")
    assert core.send_user_activity()
    assert core.send_user_audio(b"\x01\x00")
    assert sent(core) == [
        {"type": "user_message", "text": "hello"},
        {"type": "contextual_update", "text": "User opened settings"},
        {"type": "user_activity"},
        {"user_audio_chunk": "AQA="},
    ]


def test_ping_answered_at_once_with_the_same_id_and_latency_reported() -> None:
    core = connected_core()
    core.receive_frame(
        json.dumps({"type": "ping", "ping_event": {"event_id": 12345, "ping_ms": 50}})
    )
    assert sent(core) == [{"type": "pong", "event_id": 12345}]
    assert core.events_received() == [LatencyMeasured(50)]
    core.receive_frame(json.dumps({"type": "ping", "ping_event": {"event_id": 9, "ping_ms": None}}))
    assert sent(core) == [{"type": "pong", "event_id": 9}]
    assert core.events_received() == []


def test_ping_before_connected_is_answered_too() -> None:
    core = ConversationCore()
    core.start(INIT)
    core.connection_opened()
    core.data_to_send()
    core.receive_frame(json.dumps({"type": "ping", "ping_event": {"event_id": 1}}))
    assert sent(core) == [{"type": "pong", "event_id": 1}]


def test_repeated_metadata_is_ignored() -> None:
    core = connected_core()
    core.receive_frame(metadata(cid="other"))
    assert core.events_received() == []
    assert core.conversation_id == "conv_1"


def test_over_webrtc_the_room_stands_for_the_metadata() -> None:
    pcm48 = parse_audio_format("pcm_48000")
    core = ConversationCore()
    core.room_joined("conv_early", pcm48)  # before a conversation starts: nothing
    assert core.conversation_id is None
    core.start(INIT)
    core.connection_opened()
    core.events_received()
    core.room_joined("conv_room", pcm48)
    assert core.events_received() == [MetadataReceived("conv_room", pcm48, pcm48)]
    core.audio_ready()
    assert core.status is Status.CONNECTED
    assert core.user_input_format == core.agent_output_format == pcm48
    # Metadata that comes too is a repeat.
    core.receive_frame(metadata(cid="conv_meta"))
    assert core.conversation_id == "conv_room"


def test_metadata_before_the_room_wins() -> None:
    core = ConversationCore()
    core.start(INIT)
    core.connection_opened()
    core.receive_frame(metadata(cid="conv_meta"))
    core.room_joined("conv_room", parse_audio_format("pcm_48000"))
    assert core.conversation_id == "conv_meta"
    assert core.agent_output_format == parse_audio_format("pcm_44100")


def test_unsupported_audio_format_ends_with_a_sentence() -> None:
    core = ConversationCore()
    core.start(INIT)
    core.connection_opened()
    core.events_received()
    core.receive_frame(metadata(out="mp3_44100_128"))
    events = core.events_received()
    errors = [e for e in events if isinstance(e, ErrorReported)]
    assert errors
    assert errors[0].fatal
    assert "mp3_44100_128" in errors[0].message
    assert CloseRequested(1000, "Client error") in events
    assert core.status is Status.DISCONNECTING
    core.connection_closed(1000, "Client error")
    (disconnected,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert disconnected.details.reason is DisconnectReason.ERROR
    assert disconnected.details.error_type == "unsupported_audio_format"


def test_mode_follows_playback_and_interruption() -> None:
    core = connected_core()
    assert core.mode is Mode.LISTENING
    assert not core.is_speaking
    core.playback_started()
    assert core.is_speaking
    assert core.events_received() == [ModeChanged(Mode.SPEAKING)]
    core.playback_started()
    assert core.events_received() == []
    core.playback_stopped()
    assert core.events_received() == [ModeChanged(Mode.LISTENING)]
    core.playback_started()
    core.events_received()
    core.receive_frame(interruption(4))
    assert core.events_received() == [Interruption(4), ModeChanged(Mode.LISTENING)]


def test_playback_before_connected_does_not_change_mode() -> None:
    core = ConversationCore()
    core.start(INIT)
    core.events_received()
    core.playback_started()
    assert core.mode is Mode.LISTENING
    assert core.events_received() == []


def audio_events(core: ConversationCore) -> list[AgentAudio]:
    return [e for e in core.events_received() if isinstance(e, AgentAudio)]


def test_interruption_filter_drops_strictly_older_audio_and_keeps_equal() -> None:
    core = connected_core()
    core.receive_frame(audio(3))
    assert audio_events(core) == [AgentAudio(b"\x00\x01", 3)]
    core.receive_frame(interruption(4))
    core.events_received()
    assert core.interruption_event_id == 4
    core.receive_frame(audio(3))  # stale: the reply the user cut off
    assert core.events_received() == []
    core.receive_frame(audio(4))  # the new reply
    assert audio_events(core) == [AgentAudio(b"\x00\x01", 4)]
    core.receive_frame(audio(None))  # no id: cannot be judged stale
    assert audio_events(core) == [AgentAudio(b"\x00\x01", None)]


def test_an_older_interruption_does_not_move_the_filter_back() -> None:
    core = connected_core()
    core.receive_frame(interruption(6))
    core.receive_frame(interruption(5))
    core.receive_frame(interruption(None))
    assert core.interruption_event_id == 6
    core.receive_frame(audio(5))
    assert [e for e in core.events_received() if isinstance(e, AgentAudio)] == []


def test_feedback_rates_the_latest_agent_event_and_can_be_changed_or_cleared() -> None:
    core = connected_core()
    assert not core.can_send_feedback
    assert core.feedback_event_id is None
    assert not core.send_feedback(like=True)
    core.receive_frame(agent_response("Hi", 3))
    assert core.events_received() == [
        AgentResponse("Hi", 3),
        CanSendFeedbackChanged(True),
        FeedbackChanged(3, None),
    ]
    core.receive_frame(agent_response("More", 5))
    assert core.events_received() == [AgentResponse("More", 5), FeedbackChanged(5, None)]
    assert core.feedback_event_id == 5
    assert core.send_feedback(like=False)
    assert sent(core) == [{"type": "feedback", "score": "dislike", "event_id": 5}]
    assert core.events_received() == [FeedbackChanged(5, "dislike")]
    assert core.feedback_rating == "dislike"
    assert core.can_send_feedback, "the rating can still be changed"
    assert core.send_feedback(like=True)  # changed
    assert sent(core) == [{"type": "feedback", "score": "like", "event_id": 5}]
    assert core.send_feedback(like=True)  # the chosen button again: cleared
    assert sent(core) == [{"type": "feedback", "score": None, "event_id": 5}]
    assert core.events_received() == [FeedbackChanged(5, "like"), FeedbackChanged(5, None)]
    assert core.feedback_rating is None
    assert not core.clear_feedback()  # nothing to clear
    core.send_feedback(like=True)
    assert core.clear_feedback()
    assert sent(core)[-1] == {"type": "feedback", "score": None, "event_id": 5}


def test_in_voice_the_latest_audio_kept_is_what_feedback_rates() -> None:
    core = connected_core()
    core.receive_frame(audio(2))
    assert core.feedback_event_id == 2
    core.send_feedback(like=True)
    core.receive_frame(audio(4))
    assert core.feedback_event_id == 4
    assert core.feedback_rating is None
    core.receive_frame(interruption(6))
    core.receive_frame(audio(5))  # dropped as stale: not the latest kept
    assert core.feedback_event_id == 4
    core.receive_frame(agent_response("back", 2))  # an older event rated again: its rating
    assert core.feedback_rating == "like"


def test_response_without_event_id_cannot_be_rated() -> None:
    core = connected_core()
    core.receive_frame(agent_response("Hi", None))
    assert core.events_received() == [AgentResponse("Hi", None)]
    assert not core.can_send_feedback


def test_feedback_before_connected_waits_for_connected() -> None:
    core = ConversationCore()
    core.start(INIT)
    core.connection_opened()
    core.receive_frame(metadata())
    core.receive_frame(agent_response("Hi", 1))
    assert not core.can_send_feedback
    core.events_received()
    core.audio_ready()
    assert CanSendFeedbackChanged(True) in core.events_received()


def test_feedback_eligibility_ends_with_the_conversation() -> None:
    core = connected_core()
    core.receive_frame(agent_response("Hi", 1))
    core.events_received()
    core.connection_closed(1011, "boom")
    events = core.events_received()
    assert CanSendFeedbackChanged(False) in events
    assert not core.can_send_feedback


def test_end_while_feedback_is_possible_withdraws_it_once() -> None:
    core = connected_core()
    core.receive_frame(agent_response("Hi", 1))
    core.events_received()
    core.end()
    core.connection_closed(1000, "User ended conversation")
    events = core.events_received()
    assert events.count(CanSendFeedbackChanged(False)) == 1


def test_tool_call_bookkeeping() -> None:
    core = connected_core()
    core.receive_frame(tool_call("call_1"))
    assert core.events_received() == [ClientToolCall("getBatteryLevel", "call_1", {}, None)]
    assert [c.tool_call_id for c in core.pending_tool_calls] == ["call_1"]
    core.receive_frame(tool_call("call_1"))  # a repeat of a pending call is not run twice
    assert core.events_received() == []
    assert core.send_tool_result("call_1", "0", is_error=False)
    assert sent(core) == [
        {"type": "client_tool_result", "tool_call_id": "call_1", "result": "0", "is_error": False}
    ]
    assert not core.send_tool_result("call_1", "again", is_error=False)
    assert not core.send_tool_result("never_called", "x", is_error=True)
    assert sent(core) == []
    assert core.pending_tool_calls == ()


def test_tool_result_after_the_end_is_not_sent() -> None:
    core = connected_core()
    core.receive_frame(tool_call("call_9"))
    core.connection_closed(1000, "")
    core.data_to_send()
    assert not core.send_tool_result("call_9", "late", is_error=False)
    assert core.data_to_send() == []


def test_tool_result_while_disconnecting_is_not_sent() -> None:
    core = connected_core()
    core.receive_frame(tool_call("call_2"))
    core.end()
    core.data_to_send()
    assert not core.send_tool_result("call_2", "x", is_error=False)
    assert core.data_to_send() == []


def test_user_end() -> None:
    core = connected_core()
    assert core.end()
    assert core.status is Status.DISCONNECTING
    assert core.events_received() == [
        StatusChanged(Status.DISCONNECTING),
        CloseRequested(1000, "User ended conversation"),
    ]
    assert not core.end()  # already ending
    core.connection_closed(1000, "User ended conversation")
    events = core.events_received()
    assert events[0] == StatusChanged(Status.DISCONNECTED)
    details = events[-1].details  # type: ignore[union-attr]
    assert details.reason is DisconnectReason.USER
    assert details.close_code == 1000
    assert core.status is Status.DISCONNECTED
    assert not core.end()


def test_end_while_speaking_returns_to_listening() -> None:
    core = connected_core()
    core.playback_started()
    core.events_received()
    core.end()
    assert ModeChanged(Mode.LISTENING) in core.events_received()


def test_server_close_1000_is_the_agent_ending() -> None:
    core = connected_core()
    core.connection_closed(1000, "")
    (event,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert event.details.reason is DisconnectReason.AGENT
    assert not event.details.is_error


def test_end_call_tool_response_is_the_agent_ending() -> None:
    core = connected_core()
    core.receive_frame(
        json.dumps(
            {
                "type": "agent_tool_response",
                "agent_tool_response": {
                    "tool_name": "end_call",
                    "tool_call_id": "x",
                    "tool_type": "system",
                    "is_error": False,
                    "event_id": 9,
                },
            }
        )
    )
    events = core.events_received()
    assert AgentToolResponse("end_call", "x", "system", False, 9) in events
    assert CloseRequested(1000, "Agent ended conversation") in events
    core.connection_closed(1006, None)  # whatever the close looks like after that
    (event,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert event.details.reason is DisconnectReason.AGENT
    assert event.details.close_code == 1000


def test_other_agent_tools_do_not_end() -> None:
    core = connected_core()
    for kind in ("agent_tool_response", "agent_tool_response_full_payload"):
        core.receive_frame(
            json.dumps(
                {
                    "type": kind,
                    kind: {"tool_name": "transfer_to_agent", "full_tool_result": "ok"},
                }
            )
        )
    assert core.status is Status.CONNECTED


@pytest.mark.parametrize("kind", ["agent_tool_response", "agent_tool_response_full_payload"])
@pytest.mark.parametrize("is_error", [False, True])
def test_end_call_in_either_form_ends_whatever_its_is_error(kind: str, is_error: bool) -> None:
    core = connected_core()
    core.receive_frame(
        json.dumps(
            {
                "type": kind,
                kind: {"tool_name": "end_call", "is_error": is_error, "full_tool_result": ""},
            }
        )
    )
    assert core.status is Status.DISCONNECTING
    core.connection_closed(1000, "")
    (event,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert event.details.reason is DisconnectReason.AGENT


def test_end_call_while_disconnecting_changes_nothing() -> None:
    core = connected_core()
    core.end()
    core.events_received()
    core.receive_frame(
        json.dumps(
            {"type": "agent_tool_response", "agent_tool_response": {"tool_name": "end_call"}}
        )
    )
    assert not any(isinstance(e, CloseRequested) for e in core.events_received())
    core.connection_closed(1000, "")
    (event,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert event.details.reason is DisconnectReason.USER


@pytest.mark.parametrize(
    ("code", "reason", "words"),
    [
        (1002, "llm timeout", "operational problem (llm timeout)"),
        (1008, "Override for field 'voice_id' is not allowed", "refused the conversation"),
        (1011, "", "internal error"),
        (1011, "Conversation has exceeded maximum duration", "maximum duration"),
        (4000, "custom", "closed by the server (code 4000: custom)"),
        (4001, "", "closed by the server (code 4001)."),
        (None, None, "lost"),
        (1006, "", "lost"),
    ],
)
def test_server_close_codes_become_error_details(
    code: int | None, reason: str | None, words: str
) -> None:
    core = connected_core()
    core.connection_closed(code, reason)
    (event,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert event.details.reason is DisconnectReason.ERROR
    assert words in event.details.message
    assert event.details.close_code == code


def error_frame(**body: Any) -> str:
    return json.dumps({"type": "error", "error_event": body})


def test_an_error_event_is_shown_and_the_server_close_ends_with_its_sentence() -> None:
    core = connected_core()
    core.receive_frame(
        error_frame(
            code=1008,
            message="Missing required dynamic variables in first message: ['name']",
            reason="Missing dynamic variable",
            error_type="missing_dynamic_variable",
            debug_message="stack…",
        )
    )
    events = core.events_received()
    (reported,) = [e for e in events if isinstance(e, ErrorReported)]
    assert not reported.fatal
    assert reported.message == "Missing required dynamic variables in first message: ['name']."
    assert not any(isinstance(e, CloseRequested) for e in events), "the server closes, not us"
    assert core.status is Status.CONNECTED
    core.connection_closed(1008, "Missing dynamic variable")
    (event,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert event.details.reason is DisconnectReason.ERROR
    assert event.details.message == reported.message
    assert event.details.error_type == "missing_dynamic_variable"
    assert event.details.close_code == 1008
    assert event.details.close_reason == "Missing dynamic variable"


def test_an_error_event_with_only_code_and_reason_shows_the_reason() -> None:
    core = connected_core()
    core.receive_frame(error_frame(code=1002, reason="The LLM did not respond in time"))
    (reported,) = [e for e in core.events_received() if isinstance(e, ErrorReported)]
    assert reported.message == "The LLM did not respond in time."
    core.receive_frame(agent_response("still here", 4))  # the conversation goes on
    assert AgentResponse("still here", 4) in core.events_received()


def test_an_error_then_a_normal_close_is_the_agent_ending() -> None:
    core = connected_core()
    core.receive_frame(error_frame(code=1002, error_type="llm_timeout"))
    core.connection_closed(1000, "")
    (event,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert event.details.reason is DisconnectReason.AGENT


def test_max_duration_error_ends_the_conversation_from_the_client() -> None:
    core = connected_core()
    core.receive_frame(error_frame(code=1000, error_type="max_duration_exceeded"))
    events = core.events_received()
    (reported,) = [e for e in events if isinstance(e, ErrorReported)]
    assert reported.fatal
    assert "maximum duration" in reported.message
    assert CloseRequested(1000, "Client closing after server error") in events
    core.connection_closed(1000, "")
    (event,) = [e for e in core.events_received() if isinstance(e, Disconnected)]
    assert event.details.error_type == "max_duration_exceeded"


def test_error_event_while_disconnecting_is_only_passed_on() -> None:
    core = connected_core()
    core.end()
    core.events_received()
    core.receive_frame(error_frame(message="late"))
    assert core.events_received() == [ServerError(None, "late")]


def mcp_call(state: str, call_id: str = "m1", **extra: Any) -> str:
    return json.dumps(mcp_tool_call(call_id, state, **extra))


def test_mcp_approval_is_asked_once_and_answered_once() -> None:
    core = connected_core()
    core.receive_frame(mcp_call("awaiting_approval", approval_timeout_secs=30))
    core.receive_frame(mcp_call("awaiting_approval", approval_timeout_secs=30))  # repeated
    events = core.events_received()
    asked = [e for e in events if isinstance(e, McpApprovalRequested)]
    assert len(asked) == 1
    assert asked[0].call.approval_timeout_s == 30
    assert [c.tool_call_id for c in core.pending_approvals] == ["m1"]
    assert core.send_mcp_approval("m1", approved=True)
    assert sent(core) == [
        {"type": "mcp_tool_approval_result", "tool_call_id": "m1", "is_approved": True}
    ]
    assert core.events_received() == [McpApprovalClosed("m1")]
    assert not core.send_mcp_approval("m1", approved=False)  # answered already
    assert not core.send_mcp_approval("other", approved=True)
    assert sent(core) == []


def test_mcp_approval_settled_by_the_server_or_the_end_closes_the_question() -> None:
    core = connected_core()
    core.receive_frame(mcp_call("awaiting_approval", "m1", approval_timeout_secs=5))
    core.receive_frame(mcp_call("awaiting_approval", "m2", approval_timeout_secs=5))
    core.receive_frame(mcp_call("failure", "m1", error_message="approval timed out"))
    core.receive_frame(mcp_call("loading", "m3"))
    events = core.events_received()
    assert McpApprovalClosed("m1") in events
    assert sum(isinstance(e, McpApprovalClosed) for e in events) == 1
    core.connection_closed(1006, None)
    events = core.events_received()
    assert McpApprovalClosed("m2") in events
    assert events.index(McpApprovalClosed("m2")) < next(
        i for i, e in enumerate(events) if isinstance(e, Disconnected)
    )


def test_multimodal_message_and_context_ids() -> None:
    core = connected_core()
    assert core.send_multimodal_message("look", "file_1")
    assert core.send_contextual_update("Cart: 2", "cart")
    assert sent(core) == [
        {
            "type": "multimodal_message",
            "text": {"type": "user_message", "text": "look"},
            "file": {"type": "file_input", "file_id": "file_1"},
        },
        {"type": "contextual_update", "text": "Cart: 2", "context_id": "cart"},
    ]


def test_malformed_frames_are_reported_once_and_the_conversation_goes_on() -> None:
    core = connected_core()
    core.receive_frame("{oops")
    core.receive_frame(b"\x00")
    events = core.events_received()
    assert sum(isinstance(e, MalformedFrame) for e in events) == 2
    reported = [e for e in events if isinstance(e, ErrorReported)]
    assert len(reported) == 1
    assert not reported[0].fatal
    assert core.status is Status.CONNECTED


def test_a_burst_of_malformed_frames_is_logged_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    core = connected_core()
    with caplog.at_level(logging.WARNING, logger="voicedesk.protocol.machine"):
        for _ in range(2000):
            core.receive_frame("{oops")
    logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(logged) == 12  # the first 10, then the 1000th and the 2000th
    assert logged[-1].startswith("ignoring malformed frame #2000 ")
    assert core.status is Status.CONNECTED


def test_other_events_pass_through() -> None:
    core = connected_core()
    core.receive_frame(json.dumps({"type": "vad_score", "vad_score_event": {"vad_score": 0.5}}))
    core.receive_frame(json.dumps({"type": "brand_new_type"}))
    assert core.events_received() == [VadScore(0.5), UnknownEvent("brand_new_type")]


def test_frames_after_disconnect_are_ignored() -> None:
    core = connected_core()
    core.connection_closed(1000, "")
    core.events_received()
    core.receive_frame(agent_response("ghost", 1))
    assert core.events_received() == []
    core.connection_closed(1000, "")  # a second close changes nothing
    assert core.events_received() == []


def test_start_failed_and_restart() -> None:
    core = ConversationCore()
    core.start_failed("nothing to fail")  # not started: ignored
    assert core.events_received() == []
    core.start(INIT)
    core.start_failed("The API key was not accepted.")
    events = core.events_received()
    (event,) = [e for e in events if isinstance(e, Disconnected)]
    assert event.details.message == "The API key was not accepted."
    assert core.status is Status.DISCONNECTED
    core.start(INIT)  # a new start works
    assert core.status is Status.CONNECTING


def test_fail_only_while_running() -> None:
    core = ConversationCore()
    core.fail("no")
    assert core.events_received() == []
    core = connected_core()
    core.fail("The microphone vanished.", "audio")
    events = core.events_received()
    assert ErrorReported("The microphone vanished.", "audio", fatal=True) in events
    assert core.status is Status.DISCONNECTING


def test_conversation_state_resets_between_conversations() -> None:
    core = connected_core()
    core.receive_frame(interruption(9))
    core.receive_frame(tool_call("c1"))
    core.connection_closed(1000, "")
    core.start(INIT)
    core.connection_opened()
    core.receive_frame(metadata(cid="conv_2"))
    core.audio_ready()
    assert core.interruption_event_id is None
    assert core.pending_tool_calls == ()
    assert core.conversation_id == "conv_2"


server_frames = st.one_of(
    st.sampled_from(
        [
            metadata(),
            audio(1),
            audio(2),
            audio(None),
            agent_response("a", 1),
            agent_response("b", 2),
            interruption(2),
            interruption(None),
            tool_call("c1"),
            tool_call("c2", "flashScreen"),
            json.dumps({"type": "ping", "ping_event": {"event_id": 3, "ping_ms": 4}}),
            json.dumps({"type": "error", "error_event": {"message": "x"}}),
            json.dumps(
                {"type": "agent_tool_response", "agent_tool_response": {"tool_name": "end_call"}}
            ),
            "{bad",
            "[]",
            json.dumps({"type": "mystery"}),
        ]
    ),
    st.text(max_size=30),
    st.binary(max_size=30),
)
actions = st.sampled_from(
    ["end", "audio_ready", "play", "stop", "feedback", "message", "close", "lost", "tool_result"]
)


@settings(max_examples=200)
@given(st.lists(st.one_of(server_frames, actions), max_size=30))
def test_any_sequence_of_frames_and_actions_keeps_the_core_consistent(steps: list[Any]) -> None:
    core = ConversationCore()
    core.start(INIT)
    core.connection_opened()
    disconnects = 0
    for step in steps:
        if isinstance(step, bytes) or step not in actions.elements:  # type: ignore[attr-defined]
            core.receive_frame(step)
        elif step == "end":
            core.end()
        elif step == "audio_ready":
            core.audio_ready()
        elif step == "play":
            core.playback_started()
        elif step == "stop":
            core.playback_stopped()
        elif step == "feedback":
            core.send_feedback(True)
        elif step == "message":
            core.send_user_message("hi")
        elif step == "tool_result":
            core.send_tool_result("c1", "ok", is_error=False)
        elif step == "close":
            core.connection_closed(1000, "")
        else:
            core.connection_closed(None, None)
        for frame in core.data_to_send():
            json.loads(frame)
        disconnects += sum(isinstance(e, Disconnected) for e in core.events_received())
        if core.is_speaking:
            assert core.status is Status.CONNECTED
        if core.status is Status.DISCONNECTED:
            assert not core.can_send_feedback
            assert core.mode is Mode.LISTENING
    assert disconnects <= 1
