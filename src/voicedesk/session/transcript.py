"""The conversation as a list of lines a person reads: what was said, typed, done, and went wrong.

:class:`Transcript` folds session events into :class:`TranscriptLine` objects and
tells its listener which line was added or changed, so a view redraws one line at a
time. Rules (from ``convai-protocol.md``, "Server -> client events"):

- ``tentative_user_transcript`` is shown dimmed and replaced by the next tentative
  text or by the final ``user_transcript``;
- ``agent_chat_response_part`` start/delta/stop streams one agent line; the
  ``agent_response`` with the same ``event_id`` settles it (without parts, as a
  default agent sends, ``agent_response`` alone makes the line);
- ``agent_response_correction`` (the agent was interrupted) rewrites the line that
  held the original text, in place;
- a client tool call is one line, updated with its result;
- a tool the agent runs elsewhere (``agent_tool_request`` / ``agent_tool_response``
  / ``agent_tool_response_full_payload``) is one line keyed by ``tool_call_id``:
  "The agent is using get_weather…", then done or failed (the full payload's result
  shortened for display). Client tools (they have their own line) and ``end_call``
  are not shown;
- an MCP tool call (``mcp_tool_call``) is one line keyed by ``tool_call_id``, updated
  through its states; the user's approval answer shows on it;
- ``agent_reasoning_response_part`` streams a "Thinking" line only when the
  transcript was made with ``show_reasoning=True``;
- ``rich_content`` shows as its plain text, where it has some; ``guardrail_triggered``
  and an MCP server that fails to connect are a sentence each;
- audio alignment (``audio_event.alignment``) is kept per agent ``event_id`` for the
  views (:meth:`Transcript.alignment`); it draws nothing by itself.

No Qt here; a view subscribes with :meth:`Transcript.set_listener`. The text helpers
(:func:`agent_tool_text`, :func:`mcp_call_text`, :func:`approval_question`, …) are
shared with the console.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from voicedesk.protocol.events import (
    AgentAudio,
    AgentChatResponsePart,
    AgentReasoningResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    AgentToolRequest,
    AgentToolResponse,
    Alignment,
    AsrInitiationMetadata,
    ContextUsage,
    ExternalAgentConnected,
    ExternalAgentDisconnected,
    GuardrailTriggered,
    McpConnectionStatus,
    McpToolCall,
    RichContent,
    TentativeUserTranscript,
    UserTranscript,
)
from voicedesk.protocol.machine import (
    END_CALL_TOOL,
    Disconnected,
    ErrorReported,
    Status,
    StatusChanged,
)
from voicedesk.session.conversation import approval_window_s
from voicedesk.session.events import (
    AudioNotice,
    AudioUnavailable,
    Notice,
    SessionEvent,
    ToolCallFinished,
    ToolCallStarted,
    TransportNotice,
)

logger = logging.getLogger(__name__)

#: How much of a tool's result a line shows (the full payload can be long JSON).
RESULT_DISPLAY_CHARS = 160
#: How much of one parameter value a line shows (an email body, say), and of all of them.
VALUE_DISPLAY_CHARS = 24
PARAMETERS_DISPLAY_CHARS = 40
#: How much of one parameter value an approval question shows: the user decides on it.
QUESTION_VALUE_CHARS = 120
#: A prompt gives up this long before the session would, so "no answer in time" is
#: the prompt's own sentence, not a cancellation.
APPROVAL_PROMPT_MARGIN_S = 0.5

GUARDRAIL_SENTENCE = "A guardrail of the agent stopped or changed its reply."
EXTERNAL_AGENT_CONNECTED = "A person took over the conversation from the agent."
EXTERNAL_AGENT_DISCONNECTED = "The person left the conversation; the agent is back."


class Speaker(StrEnum):
    USER = "You"
    AGENT = "Agent"
    TOOL = "Tool"
    THINKING = "Thinking"
    NOTICE = "Note"
    ERROR = "Error"


class LineKind(StrEnum):
    """What a line shows, beyond who it is from."""

    TEXT = "text"  # what was said or typed, a notice, an error
    CLIENT_TOOL = "client_tool"  # a tool this client ran (client_tool_call)
    AGENT_TOOL = "agent_tool"  # a tool the agent ran elsewhere (webhook, system)
    MCP_TOOL = "mcp_tool"  # a tool of one of the agent's MCP servers
    REASONING = "reasoning"  # the agent's reasoning (only with show_reasoning)
    RICH_CONTENT = "rich_content"  # a rich component, as its plain text


class ToolState(StrEnum):
    """Where a tool line is: the MCP states, plus what an agent tool can end in."""

    RUNNING = "loading"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    DENIED = "denied"
    SUCCESS = "success"
    FAILURE = "failure"
    BLOCKED = "blocked"
    NOT_RUN = "not_run"


_FINAL_STATES = frozenset(
    {ToolState.SUCCESS, ToolState.FAILURE, ToolState.BLOCKED, ToolState.NOT_RUN}
)


@dataclass(slots=True)
class TranscriptLine:
    """One line. ``tentative``: may still change (dimmed). ``corrected``: the agent was
    cut off and the text is what was actually said. ``key``: a tool call's id (or a
    rich content's); ``state``: a tool line's :class:`ToolState`."""

    speaker: Speaker
    text: str
    tentative: bool = False
    corrected: bool = False
    event_id: int | None = None
    key: str | None = None
    kind: LineKind = LineKind.TEXT
    state: ToolState | None = None

    def plain(self) -> str:
        return f"{self.speaker.value}: {self.text}"


#: ``(index, added)``: line ``index`` was appended (``True``) or changed in place.
LineListener = Callable[[int, bool], None]


# ---------------------------------------------------------------------------- text helpers


def shorten(text: str, limit: int = RESULT_DISPLAY_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with "…" when longer."""
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: max(1, limit - 1)].rstrip() + "…"


def format_parameters(
    params: object, value_chars: int | None = None, total_chars: int | None = None
) -> str:
    """``key=value`` pairs (values as Python literals). ``value_chars`` cuts each value;
    ``total_chars`` stops adding pairs past that length and ends with "…" (the first
    pair is always shown)."""
    if not isinstance(params, Mapping) or not params:
        return ""
    pairs: list[str] = []
    for key, value in params.items():
        shown = repr(value)
        if value_chars is not None and len(shown) > value_chars:
            shown = shown[: max(1, value_chars - 1)] + "…"
        pair = f"{key}={shown}"
        if pairs and total_chars is not None and len(", ".join([*pairs, pair])) > total_chars:
            pairs.append("…")
            break
        pairs.append(pair)
    return ", ".join(pairs)


def agent_tool_text(event: AgentToolRequest | AgentToolResponse) -> tuple[str, ToolState]:
    """The line for a tool the agent runs elsewhere, and its state."""
    name = event.tool_name
    if isinstance(event, AgentToolRequest):
        return f"The agent is using {name}…", ToolState.RUNNING
    result = shorten(event.full_result) if event.full_result else ""
    cut = " (cut short by the server)" if event.truncated and result else ""
    if event.is_blocked:
        return f"The agent's {name} was blocked.", ToolState.BLOCKED
    if event.is_error:
        said = f": {result}{cut}" if result else "."
        return f"The agent's {name} failed{said}", ToolState.FAILURE
    if not event.is_called:
        return f"The agent did not run {name}.", ToolState.NOT_RUN
    if result:
        return f"The agent used {name} → {result}{cut}", ToolState.SUCCESS
    return f"The agent used {name}: done.", ToolState.SUCCESS


def is_shown_agent_tool(event: AgentToolRequest | AgentToolResponse) -> bool:
    """Client tools have their own lines (ToolCallStarted/Finished); ``end_call`` ends
    the call, which says enough."""
    return event.tool_type != "client" and event.tool_name != END_CALL_TOOL


def mcp_call_name(call: McpToolCall, *, in_full: bool = False) -> str:
    """``send_email(to='Bob', …) on demo-mcp``; ``in_full``: every parameter (each value
    still cut to :data:`QUESTION_VALUE_CHARS`)."""
    where = f" on {call.service_id}" if call.service_id else ""
    if in_full:
        params = format_parameters(call.parameters, QUESTION_VALUE_CHARS)
    else:
        params = format_parameters(call.parameters, VALUE_DISPLAY_CHARS, PARAMETERS_DISPLAY_CHARS)
    return f"{call.tool_name}({params}){where}"


def mcp_call_text(call: McpToolCall) -> tuple[str, ToolState]:
    """The line for an MCP tool call in its state, and that state."""
    name = mcp_call_name(call)
    if call.state == "awaiting_approval":
        return f"{name} waits for your approval…", ToolState.AWAITING_APPROVAL
    if call.state == "loading":
        return f"The agent is using {name}…", ToolState.RUNNING
    if call.state == "success":
        result = shorten(call.result_text)
        return (f"{name} → {result}" if result else f"{name}: done."), ToolState.SUCCESS
    error = shorten(call.error_message) if call.error_message else ""
    return (f"{name} failed: {error}" if error else f"{name} failed."), ToolState.FAILURE


def approval_answer_text(call: McpToolCall, approved: bool | None) -> str:
    """The MCP line once the user answered (``None``: no answer in time)."""
    name = mcp_call_name(call)
    if approved is None:
        return f"{name}: not allowed (no answer in time)."
    return f"{name}: you allowed it…" if approved else f"{name}: you did not allow it."


def approval_time_s(call: McpToolCall) -> float:
    """How long a prompt may wait for the user's answer: the call's approval timeout,
    less the session's margin and the prompt's own."""
    return max(0.0, approval_window_s(call) - APPROVAL_PROMPT_MARGIN_S)


def parameter_rows(
    params: Mapping[str, object], value_chars: int = QUESTION_VALUE_CHARS
) -> list[tuple[str, str]]:
    """``(name, value)`` pairs for showing a call's parameters one per row."""
    rows = []
    for key, value in params.items():
        shown = value if isinstance(value, str) else repr(value)
        rows.append((str(key), shorten(shown, value_chars)))
    return rows


def approval_title(call: McpToolCall) -> str:
    """The question without the parameters (a window lists them below it)."""
    where = f" on {call.service_id}" if call.service_id else ""
    return f"The agent wants to run {call.tool_name}{where}{_purpose(call)}. Allow it?"


def _purpose(call: McpToolCall) -> str:
    about = shorten(call.tool_description, 120).rstrip(".") if call.tool_description else ""
    if about[1:2].islower():  # "Send an email…" reads on in lower case; "MCP…" does not
        about = about[0].lower() + about[1:]
    return f" ({about})" if about else ""


def approval_question(call: McpToolCall) -> str:
    """The question put to the user: what would run where (every parameter: the user
    decides on them), and what the tool is for."""
    return f"The agent wants to run {mcp_call_name(call, in_full=True)}{_purpose(call)}. Allow it?"


class McpConnections:
    """Which of the agent's MCP servers are down, from ``mcp_connection_status``:
    :meth:`update` returns sentences for servers that failed or came back since."""

    def __init__(self) -> None:
        self._down: set[str] = set()

    def clear(self) -> None:
        self._down.clear()

    def update(self, event: McpConnectionStatus) -> list[tuple[bool, str]]:
        """``(is_failure, sentence)`` for each change worth showing."""
        said: list[tuple[bool, str]] = []
        for item in event.integrations:
            name = item.integration_id or "(unnamed)"
            if not item.is_connected and name not in self._down:
                self._down.add(name)
                said.append(
                    (
                        True,
                        f"The agent's MCP server {name} is not connected, so the agent "
                        "cannot use its tools now.",
                    )
                )
            elif item.is_connected and name in self._down:
                self._down.discard(name)
                said.append((False, f"The agent's MCP server {name} is connected again."))
        return said


def log_event(event: SessionEvent) -> None:
    """Events for the log only (``context_usage``, ``asr_initiation_metadata``,
    ``mcp_connection_status``): each front end calls this on every event."""
    match event:
        case ContextUsage():
            logger.info(
                "context usage: %d of %d tokens (%s)",
                event.context_tokens,
                event.context_limit_tokens,
                event.model or "model not named",
            )
        case McpConnectionStatus(integrations=integrations):
            for item in integrations:
                logger.info(
                    "MCP server %s (%s): %s, %d tools",
                    item.integration_id,
                    item.integration_type,
                    "connected" if item.is_connected else "NOT connected",
                    item.tool_count,
                )
        case AsrInitiationMetadata(metadata=metadata):
            logger.info("speech recognition metadata: %s", metadata)
        case _:
            pass


# ---------------------------------------------------------------------------- the model


class Transcript:
    """The lines of the conversations held in one window, oldest first.

    ``show_reasoning``: show the agent's reasoning parts (off by default, as the
    official clients; may be changed between conversations).
    """

    def __init__(self, *, show_reasoning: bool = False) -> None:
        self.show_reasoning = show_reasoning
        self.lines: list[TranscriptLine] = []
        self._listener: LineListener | None = None
        self._tentative_user: int | None = None
        self._streaming_agent: int | None = None
        self._tools: dict[str, int] = {}  # agent and MCP tool lines by tool_call_id
        self._mcp_calls: dict[str, McpToolCall] = {}
        self._reasoning: dict[str, int] = {}
        self._rich: dict[str, int] = {}
        self._alignments: dict[int, list[Alignment]] = {}
        self._mcp_connections = McpConnections()

    def set_listener(self, listener: LineListener | None) -> None:
        self._listener = listener

    def plain_text(self) -> str:
        return "\n".join(line.plain() for line in self.lines)

    def clear(self) -> None:
        self.lines.clear()
        self._tentative_user = self._streaming_agent = None
        self._forget_conversation()
        self._alignments.clear()

    def alignment(self, event_id: int) -> tuple[Alignment, ...]:
        """The character timings of agent event ``event_id``'s audio, as they arrived
        (``audio_event.alignment``); empty when the agent sent none."""
        return tuple(self._alignments.get(event_id, ()))

    def tool_line(self, tool_call_id: str) -> TranscriptLine | None:
        """The agent or MCP tool line of ``tool_call_id``, if there is one."""
        index = self._tools.get(tool_call_id)
        return self.lines[index] if index is not None else None

    # ------------------------------------------------------------------ inputs

    def add_user_message(self, text: str) -> None:
        """A message the user typed and sent."""
        self._append(TranscriptLine(Speaker.USER, text))

    def add_notice(self, text: str) -> None:
        self._append(TranscriptLine(Speaker.NOTICE, text))

    def add_error(self, text: str) -> None:
        self._append(TranscriptLine(Speaker.ERROR, text))

    def approval_answered(self, tool_call_id: str, approved: bool | None) -> None:
        """The user answered an MCP approval (``None``: did not answer in time)."""
        call = self._mcp_calls.get(tool_call_id)
        index = self._tools.get(tool_call_id)
        if call is None or index is None:
            return
        line = self.lines[index]
        if line.state is not ToolState.AWAITING_APPROVAL:
            return  # the server already moved on
        line.text = approval_answer_text(call, approved)
        line.state = ToolState.APPROVED if approved else ToolState.DENIED
        line.tentative = bool(approved)
        self._changed(index)

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
            case AgentAudio(event_id=event_id, alignment=alignment):
                if alignment is not None and event_id is not None:
                    self._alignments.setdefault(event_id, []).append(alignment)
            case ToolCallStarted(tool_call_id=call_id, tool_name=name, parameters=params):
                self._append(
                    TranscriptLine(
                        Speaker.TOOL,
                        f"{name}({format_parameters(params)}) …",
                        True,
                        key=call_id,
                        kind=LineKind.CLIENT_TOOL,
                        state=ToolState.RUNNING,
                    )
                )
            case ToolCallFinished():
                self._tool_finished(event)
            case AgentToolRequest() | AgentToolResponse():
                self._agent_tool(event)
            case McpToolCall():
                self._mcp_call(event)
            case McpConnectionStatus():
                for failed, sentence in self._mcp_connections.update(event):
                    (self.add_error if failed else self.add_notice)(sentence)
            case AgentReasoningResponsePart():
                if self.show_reasoning:
                    self._reasoning_part(event)
            case RichContent():
                self._rich_content(event)
            case GuardrailTriggered():
                self.add_notice(GUARDRAIL_SENTENCE)
            case ExternalAgentConnected():
                self.add_notice(EXTERNAL_AGENT_CONNECTED)
            case ExternalAgentDisconnected():
                self.add_notice(EXTERNAL_AGENT_DISCONNECTED)
            case ErrorReported(message=message):
                self.add_error(message)
            case (
                AudioUnavailable(message=message)
                | AudioNotice(message=message)
                | TransportNotice(message=message)
                | Notice(message=message)
            ):
                self.add_notice(message)
            case StatusChanged(status=Status.CONNECTING):
                self._alignments.clear()
                self.add_notice("New conversation.")
            case Disconnected(details=details):
                self._settle_all()
                if details.is_error and self._last_error() == details.message:
                    # The error event already said why; the server has now closed.
                    self.add_notice("The conversation ended.")
                elif details.is_error:
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
        state = ToolState.FAILURE if event.is_error else ToolState.SUCCESS
        for index in range(len(self.lines) - 1, -1, -1):
            line = self.lines[index]
            if line.kind is LineKind.CLIENT_TOOL and line.key == event.tool_call_id:
                line.text, line.tentative, line.state = text, False, state
                self._changed(index)
                return
        self._append(
            TranscriptLine(
                Speaker.TOOL, text, key=event.tool_call_id, kind=LineKind.CLIENT_TOOL, state=state
            )
        )

    def _agent_tool(self, event: AgentToolRequest | AgentToolResponse) -> None:
        if not is_shown_agent_tool(event):
            return
        text, state = agent_tool_text(event)
        index = self._tools.get(event.tool_call_id)
        if index is None:
            self._append_tool(text, state, event.tool_call_id, LineKind.AGENT_TOOL, event.event_id)
            return
        line = self.lines[index]
        # An MCP call's own events say more than the generic tool events about it; a
        # repeated request (or a response after a full payload) changes nothing.
        if line.kind is LineKind.MCP_TOOL or isinstance(event, AgentToolRequest):
            return
        if line.state in _FINAL_STATES and event.full_result is None:
            return
        line.text, line.state, line.tentative = text, state, False
        self._changed(index)

    def _append_tool(
        self,
        text: str,
        state: ToolState,
        tool_call_id: str,
        kind: LineKind,
        event_id: int | None = None,
    ) -> None:
        """A new line for a tool the agent runs, found again by its ``tool_call_id``."""
        self._append(
            TranscriptLine(
                Speaker.TOOL,
                text,
                state not in _FINAL_STATES,
                event_id=event_id,
                key=tool_call_id,
                kind=kind,
                state=state,
            )
        )
        if tool_call_id:
            self._tools[tool_call_id] = len(self.lines) - 1

    def _mcp_call(self, call: McpToolCall) -> None:
        self._mcp_calls[call.tool_call_id] = call
        text, state = mcp_call_text(call)
        index = self._tools.get(call.tool_call_id)
        if index is None:
            self._append_tool(text, state, call.tool_call_id, LineKind.MCP_TOOL)
            return
        line = self.lines[index]
        line.text, line.state, line.kind = text, state, LineKind.MCP_TOOL
        line.tentative = state not in _FINAL_STATES
        self._changed(index)

    def _reasoning_part(self, part: AgentReasoningResponsePart) -> None:
        index = self._reasoning.get(part.event_id)
        if index is None or part.part_type == "start":
            self._append(TranscriptLine(Speaker.THINKING, "", True, kind=LineKind.REASONING))
            index = self._reasoning[part.event_id] = len(self.lines) - 1
        line = self.lines[index]
        if part.part_type == "delta":
            line.text += part.text
        elif part.part_type == "stop":
            line.tentative = False
        self._changed(index)

    def _rich_content(self, event: RichContent) -> None:
        text = event.text
        if not text:
            logger.debug(
                "rich content %s (%s) has no text to show", event.component, event.event_id
            )
            return
        index = self._rich.get(event.rich_content_id) if event.rich_content_id else None
        if index is not None:
            self.lines[index].text = text
            self._changed(index)
            return
        self._append(
            TranscriptLine(
                Speaker.AGENT,
                text,
                event_id=event.event_id,
                key=event.rich_content_id or None,
                kind=LineKind.RICH_CONTENT,
            )
        )
        if event.rich_content_id:
            self._rich[event.rich_content_id] = len(self.lines) - 1

    def _find_agent(self, event_id: int | None, *, text: str | None = None) -> int | None:
        """The latest agent line with this event id (and text, when given); failing
        that, the latest with that text."""
        agent_lines = [
            i
            for i in range(len(self.lines) - 1, -1, -1)
            if self.lines[i].speaker is Speaker.AGENT and self.lines[i].kind is LineKind.TEXT
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

    def _last_error(self) -> str | None:
        for line in reversed(self.lines):
            if line.speaker is Speaker.ERROR:
                return line.text
            if line.speaker is not Speaker.NOTICE:
                return None
        return None

    def _settle_all(self) -> None:
        """The conversation is over: nothing is tentative any more."""
        for index in (self._tentative_user, self._streaming_agent, *self._reasoning.values()):
            if index is not None and self.lines[index].tentative:
                self.lines[index].tentative = False
                self._changed(index)
        for call_id, index in self._tools.items():
            line = self.lines[index]
            if not line.tentative:
                continue
            line.tentative = False
            call = self._mcp_calls.get(call_id)
            if line.state is ToolState.AWAITING_APPROVAL and call is not None:
                line.text = f"{mcp_call_name(call)} was not run: the conversation ended."
                line.state = ToolState.NOT_RUN
            self._changed(index)
        self._tentative_user = self._streaming_agent = None
        self._forget_conversation()

    def _forget_conversation(self) -> None:
        self._tools.clear()
        self._mcp_calls.clear()
        self._reasoning.clear()
        self._rich.clear()
        self._mcp_connections.clear()

    def _append(self, line: TranscriptLine) -> None:
        self.lines.append(line)
        if self._listener is not None:
            self._listener(len(self.lines) - 1, True)

    def _changed(self, index: int) -> None:
        if self._listener is not None:
            self._listener(index, False)
