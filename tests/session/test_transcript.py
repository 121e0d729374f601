"""The transcript a user reads: tentative text replaced, streamed replies, corrections in place."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from voicedesk.protocol.errors import DisconnectDetails, DisconnectReason
from voicedesk.protocol.events import (
    AgentAudio,
    AgentChatResponsePart,
    AgentReasoningResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    AgentToolRequest,
    AgentToolResponse,
    Alignment,
    ContextUsage,
    ExternalAgentConnected,
    ExternalAgentDisconnected,
    GuardrailTriggered,
    McpConnectionStatus,
    McpIntegrationStatus,
    McpToolCall,
    McpToolState,
    RichContent,
    TentativeUserTranscript,
    UserTranscript,
    VadScore,
)
from voicedesk.protocol.machine import Disconnected, ErrorReported, Status, StatusChanged
from voicedesk.session import AudioUnavailable, ToolCallFinished, ToolCallStarted
from voicedesk.session.transcript import (
    LineKind,
    Speaker,
    ToolState,
    Transcript,
    approval_question,
    approval_time_s,
    approval_title,
    format_parameters,
    log_event,
    parameter_rows,
    shorten,
)


def record(transcript: Transcript) -> list[tuple[int, bool]]:
    calls: list[tuple[int, bool]] = []
    transcript.set_listener(lambda index, added: calls.append((index, added)))
    return calls


def test_tentative_user_text_is_replaced_in_place_by_the_final_transcript() -> None:
    t = Transcript()
    calls = record(t)
    t.apply(TentativeUserTranscript("hel", 2))
    t.apply(TentativeUserTranscript("hello the", 2))
    assert t.plain_text() == "You: hello the"
    assert t.lines[0].tentative
    t.apply(UserTranscript("hello there", 2))
    assert t.plain_text() == "You: hello there"
    assert not t.lines[0].tentative
    assert calls == [(0, True), (0, False), (0, False)]
    t.apply(UserTranscript("next turn", 3))
    assert t.plain_text() == "You: hello there\nYou: next turn"


def test_a_streamed_reply_grows_one_line_and_its_agent_response_settles_it() -> None:
    t = Transcript()
    calls = record(t)
    t.apply(AgentChatResponsePart("", "start", 5))
    t.apply(AgentChatResponsePart("Hello", "delta", 5))
    assert t.lines[0].tentative
    assert t.lines[0].text == "Hello"
    t.apply(AgentChatResponsePart(" there", "delta", 5))
    t.apply(AgentChatResponsePart("", "stop", 5))
    t.apply(AgentResponse("Hello there", 5))
    assert t.plain_text() == "Agent: Hello there"
    assert not t.lines[0].tentative
    assert calls[0] == (0, True)
    assert all(not added for _, added in calls[1:])


def test_a_delta_without_a_start_still_opens_a_line() -> None:
    t = Transcript()
    t.apply(AgentChatResponsePart("Hi", "delta", 1))
    assert t.plain_text() == "Agent: Hi"


def test_separate_agent_responses_are_separate_lines() -> None:
    t = Transcript()
    t.apply(AgentResponse("One.", 1))
    t.apply(AgentResponse("Two.", 2))
    assert t.plain_text() == "Agent: One.\nAgent: Two."


def test_a_correction_rewrites_the_interrupted_reply_not_a_later_one() -> None:
    t = Transcript()
    t.apply(AgentResponse("I will tell you a long story about", 4))
    t.apply(UserTranscript("stop", 5))
    t.apply(AgentResponse("Okay.", 6))
    t.apply(AgentResponseCorrection("I will tell you a long story about", "I will tell you", 4))
    assert t.plain_text() == "Agent: I will tell you\nYou: stop\nAgent: Okay."
    assert t.lines[0].corrected
    t.apply(AgentResponseCorrection("never said", "x", 99))
    assert t.plain_text() == "Agent: I will tell you\nYou: stop\nAgent: Okay."


def test_a_correction_without_an_event_id_matches_the_text() -> None:
    t = Transcript()
    t.apply(AgentResponse("Long answer here", None))
    t.apply(AgentResponseCorrection("Long answer here", "Long", None))
    assert t.plain_text() == "Agent: Long"


def test_a_tool_call_is_one_line_updated_with_its_result() -> None:
    t = Transcript()
    t.apply(ToolCallStarted("c1", "changeBrightness", {"brightness": 0.3}))
    assert t.lines[0].tentative
    assert t.plain_text() == "Tool: changeBrightness(brightness=0.3) …"
    t.apply(
        ToolCallFinished(
            "c1",
            "changeBrightness",
            {"brightness": 0.3},
            "Client tool execution failed: No screen here.",
            True,
            12.4,
        )
    )
    assert (
        t.plain_text() == "Tool: changeBrightness(brightness=0.3) failed: No screen here. [12 ms]"
    )
    assert not t.lines[0].tentative
    t.apply(ToolCallFinished("c2", "getBatteryLevel", {}, "0.5", False, 1.0, "charging"))
    assert t.lines[1].text == "getBatteryLevel() → 0.5 (charging) [1 ms]"


def test_errors_notices_and_the_end_are_shown_and_tentative_text_settles() -> None:
    t = Transcript()
    t.apply(StatusChanged(Status.CONNECTING))
    t.apply(TentativeUserTranscript("half a sen", 1))
    t.apply(AudioUnavailable("No microphone was found."))
    t.apply(ErrorReported("The agent reported an error: boom"))
    t.apply(VadScore(0.5))
    t.apply(
        Disconnected(
            DisconnectDetails(DisconnectReason.ERROR, "The connection to the agent was lost.")
        )
    )
    speakers = [line.speaker for line in t.lines]
    assert speakers == [Speaker.NOTICE, Speaker.USER, Speaker.NOTICE, Speaker.ERROR, Speaker.ERROR]
    assert not t.lines[1].tentative
    assert t.lines[-1].text == "The connection to the agent was lost."
    t.apply(Disconnected(DisconnectDetails(DisconnectReason.USER, "You ended the conversation.")))
    assert t.lines[-1].speaker is Speaker.NOTICE
    t.clear()
    assert t.plain_text() == ""


def test_a_default_agent_s_reply_shows_from_agent_response_alone() -> None:
    t = Transcript()
    t.apply(UserTranscript("hello", 1))
    t.apply(AgentResponse("Hi! How can I help?", 2))
    assert t.plain_text() == "You: hello\nAgent: Hi! How can I help?"
    assert not any(line.tentative for line in t.lines)


def weather_response(**kwargs: Any) -> AgentToolResponse:
    values: dict[str, Any] = {
        "tool_name": "get_weather",
        "tool_call_id": "t1",
        "tool_type": "webhook",
        "is_error": False,
        "event_id": 4,
    }
    values.update(kwargs)
    return AgentToolResponse(**values)


def test_a_tool_the_agent_runs_is_one_line_from_request_to_result() -> None:
    t = Transcript()
    calls = record(t)
    t.apply(AgentToolRequest("get_weather", "t1", "webhook", 4))
    assert t.plain_text() == "Tool: The agent is using get_weather…"
    line = t.lines[0]
    assert line.tentative
    assert (line.kind, line.state, line.key) == (LineKind.AGENT_TOOL, ToolState.RUNNING, "t1")
    t.apply(weather_response())
    assert t.plain_text() == "Tool: The agent used get_weather: done."
    assert not line.tentative
    assert line.state is ToolState.SUCCESS
    # The full payload (it may follow the short response) shows the result, shortened.
    result = (
        '{"location": "Paris", "temperature_c": 21, "conditions": "sunny"}' + " " * 3 + "x" * 300
    )
    t.apply(weather_response(full_result=result, truncated=True))
    assert line.text.startswith('The agent used get_weather → {"location": "Paris"')
    assert line.text.endswith("… (cut short by the server)")
    assert len(line.text) < 260
    assert calls == [(0, True), (0, False), (0, False)]
    assert t.tool_line("t1") is line


@pytest.mark.parametrize(
    ("changes", "text", "state"),
    [
        ({"is_error": True}, "The agent's get_weather failed.", ToolState.FAILURE),
        (
            {"is_error": True, "full_result": "City not found"},
            "The agent's get_weather failed: City not found",
            ToolState.FAILURE,
        ),
        ({"is_blocked": True}, "The agent's get_weather was blocked.", ToolState.BLOCKED),
        ({"is_called": False}, "The agent did not run get_weather.", ToolState.NOT_RUN),
    ],
)
def test_a_tool_the_agent_runs_can_fail_be_blocked_or_not_run(
    changes: dict[str, Any], text: str, state: ToolState
) -> None:
    t = Transcript()
    t.apply(weather_response(**changes))  # a response without a request: a line of its own
    assert t.plain_text() == f"Tool: {text}"
    assert t.lines[0].state is state
    assert not t.lines[0].tentative


def test_client_tools_and_end_call_get_no_agent_tool_line() -> None:
    t = Transcript()
    t.apply(AgentToolRequest("getBatteryLevel", "c1", "client", 2))
    t.apply(weather_response(tool_name="getBatteryLevel", tool_call_id="c1", tool_type="client"))
    t.apply(weather_response(tool_name="end_call", tool_call_id="e1", tool_type="system"))
    assert t.lines == []


def mcp(state: McpToolState, **kwargs: Any) -> McpToolCall:
    values: dict[str, Any] = {
        "service_id": "demo-mcp",
        "tool_call_id": "m1",
        "tool_name": "send_email",
        "state": state,
        "parameters": {
            "to": "Bob",
            "subject": "A message from the voicedesk demo",
            "body": "A long message " * 10,
        },
        "timestamp": "2026-11-26T10:00:00Z",
        "tool_description": "Send an email on the user's behalf.",
        "approval_timeout_s": 30,
    }
    values.update(kwargs)
    return McpToolCall(**values)


def test_an_mcp_call_is_one_line_through_its_states_and_the_user_s_answer() -> None:
    t = Transcript()
    calls = record(t)
    t.apply(AgentToolRequest("send_email", "m1", "mcp", 3))  # the generic request, if enabled
    t.apply(mcp("awaiting_approval"))
    line = t.lines[0]
    assert line.kind is LineKind.MCP_TOOL
    assert line.state is ToolState.AWAITING_APPROVAL
    assert line.text == "send_email(to='Bob', …) on demo-mcp waits for your approval…"
    assert line.tentative
    t.approval_answered("m1", True)
    assert line.text == "send_email(to='Bob', …) on demo-mcp: you allowed it…"
    assert line.state is ToolState.APPROVED
    t.apply(mcp("loading"))
    assert line.text == "The agent is using send_email(to='Bob', …) on demo-mcp…"
    t.apply(mcp("success", result=({"type": "text", "text": "Email sent."},)))
    assert line.text == "send_email(to='Bob', …) on demo-mcp → Email sent."
    assert not line.tentative
    # The generic response after the MCP call's own events changes nothing.
    t.apply(weather_response(tool_name="send_email", tool_call_id="m1", tool_type="mcp"))
    assert line.state is ToolState.SUCCESS
    assert len(t.lines) == 1
    assert calls[0] == (0, True)
    assert all(not added for _, added in calls[1:])


def test_an_mcp_call_denied_timed_out_or_failed() -> None:
    t = Transcript()
    t.apply(mcp("awaiting_approval"))
    t.approval_answered("m1", False)
    assert t.lines[0].text == "send_email(to='Bob', …) on demo-mcp: you did not allow it."
    assert not t.lines[0].tentative
    t.apply(mcp("failure", error_message="The user declined the tool call."))
    assert t.lines[0].text == (
        "send_email(to='Bob', …) on demo-mcp failed: The user declined the tool call."
    )
    t.apply(mcp("awaiting_approval", tool_call_id="m2"))
    t.approval_answered("m2", None)
    assert t.lines[1].text.endswith(": not allowed (no answer in time).")
    t.approval_answered("unknown", True)  # nothing to change
    t.apply(mcp("failure", tool_call_id="m3", error_message=None))
    assert t.lines[2].text == "send_email(to='Bob', …) on demo-mcp failed."
    assert t.lines[2].state is ToolState.FAILURE


def test_an_answer_after_the_server_moved_on_changes_nothing() -> None:
    t = Transcript()
    t.apply(mcp("awaiting_approval"))
    t.apply(mcp("loading"))
    t.approval_answered("m1", False)
    assert t.lines[0].state is ToolState.RUNNING


def test_an_mcp_call_still_waiting_when_the_conversation_ends_was_not_run() -> None:
    t = Transcript()
    t.apply(mcp("awaiting_approval"))
    t.apply(AgentToolRequest("get_weather", "t1", "webhook", 4))
    t.apply(Disconnected(DisconnectDetails(DisconnectReason.USER, "You ended the conversation.")))
    assert (
        t.lines[0].text
        == "send_email(to='Bob', …) on demo-mcp was not run: the conversation ended."
    )
    assert t.lines[0].state is ToolState.NOT_RUN
    assert not t.lines[1].tentative
    assert t.lines[2].text == "You ended the conversation."


def test_the_approval_question_shows_every_parameter_and_the_time_to_answer() -> None:
    call = mcp("awaiting_approval")
    question = approval_question(call)
    assert question.startswith(
        "The agent wants to run send_email(to='Bob', subject='A message from the voicedesk "
        "demo', body='A long message"
    )
    assert question.endswith("on demo-mcp (send an email on the user's behalf). Allow it?")
    assert approval_title(call) == (
        "The agent wants to run send_email on demo-mcp (send an email on the user's behalf). "
        "Allow it?"
    )
    rows = parameter_rows(call.parameters)
    assert rows[:2] == [("to", "Bob"), ("subject", "A message from the voicedesk demo")]
    assert rows[2][1].endswith("…")
    # The session answers one second early; a prompt half a second before that.
    assert approval_time_s(call) == pytest.approx(28.5)
    assert approval_time_s(mcp("awaiting_approval", approval_timeout_s=None)) == 298.5
    assert approval_title(mcp("awaiting_approval", tool_description="MCP search")) == (
        "The agent wants to run send_email on demo-mcp (MCP search). Allow it?"
    )


def test_text_helpers_shorten_for_display() -> None:
    assert shorten("a\n b   c") == "a b c"
    assert shorten("x" * 20, 10) == "x" * 9 + "…"
    assert format_parameters({"a": 1, "b": "two"}) == "a=1, b='two'"
    assert format_parameters({"a": "x" * 50}, value_chars=10) == "a='xxxxxxxx…"
    assert format_parameters({"a": 1, "b": 2, "c": 3}, total_chars=8) == "a=1, b=2, …"
    assert format_parameters([1, 2]) == ""


def test_reasoning_is_hidden_unless_asked_for() -> None:
    parts = [
        AgentReasoningResponsePart("", "start", "r1"),
        AgentReasoningResponsePart("The user wants", "delta", "r1"),
        AgentReasoningResponsePart(" the weather.", "delta", "r1"),
        AgentReasoningResponsePart("", "stop", "r1"),
    ]
    hidden = Transcript()
    for part in parts:
        hidden.apply(part)
    assert hidden.lines == []
    shown = Transcript(show_reasoning=True)
    for part in parts[:3]:
        shown.apply(part)
    assert shown.plain_text() == "Thinking: The user wants the weather."
    assert shown.lines[0].tentative
    assert shown.lines[0].kind is LineKind.REASONING
    shown.apply(parts[3])
    assert not shown.lines[0].tentative
    shown.apply(AgentResponse("It is sunny.", 5))
    assert shown.plain_text() == "Thinking: The user wants the weather.\nAgent: It is sunny."


def test_rich_content_shows_its_text_and_guardrails_and_hand_overs_a_sentence() -> None:
    t = Transcript()
    t.apply(RichContent("rc1", "item_card", {"title": "Paris", "description": "Sunny, 21 °C"}, 6))
    t.apply(RichContent("rc2", "divider", {}, 6))  # nothing readable: nothing shown
    t.apply(RichContent("rc1", "item_card", {"title": "Paris", "description": "Rain"}, 6))
    t.apply(GuardrailTriggered())
    t.apply(ExternalAgentConnected())
    t.apply(ExternalAgentDisconnected())
    assert t.plain_text() == (
        "Agent: Paris\nRain\n"
        "Note: A guardrail of the agent stopped or changed its reply.\n"
        "Note: A person took over the conversation from the agent.\n"
        "Note: The person left the conversation; the agent is back."
    )
    assert t.lines[0].kind is LineKind.RICH_CONTENT
    # A rich card is not a reply a later agent_response could settle or correct.
    t.apply(AgentResponse("Paris\nRain", 6))
    assert t.lines[-1].kind is LineKind.TEXT


def test_an_mcp_server_that_fails_is_shown_once_and_its_return_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = Transcript()
    down = McpConnectionStatus(
        (
            McpIntegrationStatus("demo-mcp", "mcp_server", False, 0),
            McpIntegrationStatus("calendar", "mcp_server", True, 3),
        )
    )
    with caplog.at_level(logging.INFO, logger="voicedesk.session.transcript"):
        log_event(down)
    assert "MCP server demo-mcp (mcp_server): NOT connected, 0 tools" in caplog.text
    t.apply(down)
    t.apply(down)
    t.apply(McpConnectionStatus((McpIntegrationStatus("demo-mcp", "mcp_server", True, 2),)))
    assert [line.speaker for line in t.lines] == [Speaker.ERROR, Speaker.NOTICE]
    assert t.lines[0].text == (
        "The agent's MCP server demo-mcp is not connected, so the agent cannot use its tools now."
    )
    assert t.lines[1].text == "The agent's MCP server demo-mcp is connected again."


def test_context_usage_goes_to_the_log_only(caplog: pytest.LogCaptureFixture) -> None:
    t = Transcript()
    usage = ContextUsage(3, "gpt-4o", 1200, 128000)
    with caplog.at_level(logging.INFO, logger="voicedesk.session.transcript"):
        log_event(usage)
    t.apply(usage)
    assert "context usage: 1200 of 128000 tokens (gpt-4o)" in caplog.text
    assert t.lines == []


def test_audio_alignment_is_kept_for_the_views() -> None:
    t = Transcript()
    first = Alignment(("H", "i"), (0, 80), (80, 90))
    second = Alignment(("!",), (0,), (60,))
    t.apply(AgentResponse("Hi!", 3))
    t.apply(AgentAudio(b"\x00\x00", 3, first))
    t.apply(AgentAudio(b"\x00\x00", 3, second))
    t.apply(AgentAudio(b"\x00\x00", 3))
    assert t.alignment(3) == (first, second)
    assert t.alignment(4) == ()
    assert t.plain_text() == "Agent: Hi!"
    t.apply(StatusChanged(Status.CONNECTING))
    assert t.alignment(3) == ()


def test_an_error_that_does_not_end_the_call_and_the_close_that_follows() -> None:
    t = Transcript()
    t.apply(ErrorReported("The agent's language model took too long to answer."))
    t.apply(AgentResponse("Sorry, where were we?", 7))
    assert [line.speaker for line in t.lines] == [Speaker.ERROR, Speaker.AGENT]
    t.apply(ErrorReported("Slow again."))
    t.apply(Disconnected(DisconnectDetails(DisconnectReason.ERROR, "Slow again.", 1002)))
    # The close repeats the error's sentence: it is said once, then that the call ended.
    assert t.plain_text().endswith("Error: Slow again.\nNote: The conversation ended.")
