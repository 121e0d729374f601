"""The conversation as a list of lines a person reads: what was said, typed, done, and went wrong.

:class:`Transcript` folds session events into :class:`TranscriptLine` objects and
tells its listener which line was added or changed, so a view redraws one line at a
time. Rules (from ``convai-protocol.md``, "Server -> client events"):

- ``tentative_user_transcript`` is shown dimmed and replaced by the next tentative
  text or by the final ``user_transcript``;
- ``agent_chat_response_part`` start/delta/stop streams one agent line; the
  ``agent_response`` with the same ``event_id`` settles it;
- ``agent_response_correction`` (the agent was interrupted) rewrites the line that
  held the original text, in place;
- a tool call is one line, updated with its result.

No Qt here; a view subscribes with :meth:`Transcript.set_listener`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from voicedesk.protocol.events import (
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    TentativeUserTranscript,
    UserTranscript,
)
from voicedesk.protocol.machine import Disconnected, ErrorReported, Status, StatusChanged
from voicedesk.session.events import (
    AudioNotice,
    AudioUnavailable,
    SessionEvent,
    ToolCallFinished,
    ToolCallStarted,
)


class Speaker(StrEnum):
    USER = "You"
    AGENT = "Agent"
    TOOL = "Tool"
    NOTICE = "Note"
    ERROR = "Error"


@dataclass(slots=True)
class TranscriptLine:
    """One line. ``tentative``: may still change (dimmed). ``corrected``: the agent was
    cut off and the text is what was actually said."""

    speaker: Speaker
    text: str
    tentative: bool = False
    corrected: bool = False
    event_id: int | None = None
    key: str | None = None  # a tool call's id

    def plain(self) -> str:
        return f"{self.speaker.value}: {self.text}"


#: ``(index, added)``: line ``index`` was appended (``True``) or changed in place.
LineListener = Callable[[int, bool], None]


def format_parameters(params: object) -> str:
    if isinstance(params, dict) and params:
        return ", ".join(f"{k}={v!r}" for k, v in params.items())
    return ""


class Transcript:
    """The lines of the conversations held in one window, oldest first."""

    def __init__(self) -> None:
        self.lines: list[TranscriptLine] = []
        self._listener: LineListener | None = None
        self._tentative_user: int | None = None
        self._streaming_agent: int | None = None

    def set_listener(self, listener: LineListener | None) -> None:
        self._listener = listener

    def plain_text(self) -> str:
        return "\n".join(line.plain() for line in self.lines)

    def clear(self) -> None:
        self.lines.clear()
        self._tentative_user = self._streaming_agent = None

    # ------------------------------------------------------------------ inputs

    def add_user_message(self, text: str) -> None:
        """A message the user typed and sent."""
        self._append(TranscriptLine(Speaker.USER, text))

    def add_notice(self, text: str) -> None:
        self._append(TranscriptLine(Speaker.NOTICE, text))

    def add_error(self, text: str) -> None:
        self._append(TranscriptLine(Speaker.ERROR, text))

    def apply(self, event: SessionEvent) -> None:
        """Fold one session event in; events that show nothing are ignored."""
        match event:
            case TentativeUserTranscript(text=text, event_id=event_id):
                self._user_text(text, event_id, tentative=True)
            case UserTranscript(text=text, event_id=event_id):
                self._user_text(text, event_id, tentative=False)
            case AgentChatResponsePart():
                self._agent_part(event)
            case AgentResponse(text=text, event_id=event_id):
                self._agent_response(text, event_id)
            case AgentResponseCorrection():
                self._correction(event)
            case ToolCallStarted(tool_call_id=call_id, tool_name=name, parameters=params):
                self._append(
                    TranscriptLine(
                        Speaker.TOOL, f"{name}({format_parameters(params)}) …", True, key=call_id
                    )
                )
            case ToolCallFinished():
                self._tool_finished(event)
            case ErrorReported(message=message):
                self.add_error(message)
            case AudioUnavailable(message=message) | AudioNotice(message=message):
                self.add_notice(message)
            case StatusChanged(status=Status.CONNECTING):
                self.add_notice("New conversation.")
            case Disconnected(details=details):
                self._settle_all()
                if details.is_error:
                    self.add_error(details.message)
                else:
                    self.add_notice(details.message)
            case _:
                pass

    # ------------------------------------------------------------------ rules

    def _user_text(self, text: str, event_id: int | None, *, tentative: bool) -> None:
        index = self._tentative_user
        if index is None:
            self._append(TranscriptLine(Speaker.USER, text, tentative, event_id=event_id))
            index = len(self.lines) - 1
        else:
            line = self.lines[index]
            line.text, line.tentative, line.event_id = text, tentative, event_id
            self._changed(index)
        self._tentative_user = index if tentative else None

    def _agent_part(self, part: AgentChatResponsePart) -> None:
        index = self._streaming_agent
        if part.part_type == "start" or index is None:
            self._append(TranscriptLine(Speaker.AGENT, "", True, event_id=part.event_id))
            index = self._streaming_agent = len(self.lines) - 1
        line = self.lines[index]
        if part.part_type == "delta":
            line.text += part.text
        elif part.part_type == "stop":
            line.tentative = False
            self._streaming_agent = None
        self._changed(index)

    def _agent_response(self, text: str, event_id: int | None) -> None:
        index = self._find_agent(event_id)
        if index is not None and (self.lines[index].tentative or self.lines[index].text == text):
            line = self.lines[index]
            line.text, line.tentative = text, False
            if index == self._streaming_agent:
                self._streaming_agent = None
            self._changed(index)
            return
        self._append(TranscriptLine(Speaker.AGENT, text, event_id=event_id))

    def _correction(self, event: AgentResponseCorrection) -> None:
        index = self._find_agent(event.event_id, text=event.original_text)
        if index is None:
            return
        line = self.lines[index]
        line.text, line.corrected, line.tentative = event.corrected_text, True, False
        self._changed(index)

    def _tool_finished(self, event: ToolCallFinished) -> None:
        outcome = f"failed: {event.message}" if event.is_error else f"→ {event.message}"
        detail = f" ({event.detail})" if event.detail else ""
        text = (
            f"{event.tool_name}({format_parameters(event.parameters)}) {outcome}{detail} "
            f"[{event.duration_ms:.0f} ms]"
        )
        for index in range(len(self.lines) - 1, -1, -1):
            line = self.lines[index]
            if line.speaker is Speaker.TOOL and line.key == event.tool_call_id:
                line.text, line.tentative = text, False
                self._changed(index)
                return
        self._append(TranscriptLine(Speaker.TOOL, text, key=event.tool_call_id))

    def _find_agent(self, event_id: int | None, *, text: str | None = None) -> int | None:
        """The latest agent line with this event id (and text, when given); failing
        that, the latest with that text."""
        agent_lines = [
            i for i in range(len(self.lines) - 1, -1, -1) if self.lines[i].speaker is Speaker.AGENT
        ]
        if event_id is not None:
            for i in agent_lines:
                if self.lines[i].event_id == event_id and (
                    text is None or self.lines[i].text == text
                ):
                    return i
        if text is not None:
            for i in agent_lines:
                if self.lines[i].text == text:
                    return i
        return None

    def _settle_all(self) -> None:
        for index in (self._tentative_user, self._streaming_agent):
            if index is not None and self.lines[index].tentative:
                self.lines[index].tentative = False
                self._changed(index)
        self._tentative_user = self._streaming_agent = None

    def _append(self, line: TranscriptLine) -> None:
        self.lines.append(line)
        if self._listener is not None:
            self._listener(len(self.lines) - 1, True)

    def _changed(self, index: int) -> None:
        if self._listener is not None:
            self._listener(index, False)
