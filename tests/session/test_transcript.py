"""The transcript a user reads: tentative text replaced, streamed replies, corrections in place."""

from __future__ import annotations

from voicedesk.protocol.errors import DisconnectDetails, DisconnectReason
from voicedesk.protocol.events import (
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    TentativeUserTranscript,
    UserTranscript,
    VadScore,
)
from voicedesk.protocol.machine import Disconnected, ErrorReported, Status, StatusChanged
from voicedesk.session import AudioUnavailable, ToolCallFinished, ToolCallStarted
from voicedesk.session.transcript import Speaker, Transcript


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
