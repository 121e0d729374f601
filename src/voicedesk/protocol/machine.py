"""The conversation state machine, sans I/O.

A driver (``voicedesk.session``) feeds it what happens on the wire and in the audio
device, and takes out two things after every input:

- :meth:`ConversationCore.data_to_send`: JSON text frames to write to the socket;
- :meth:`ConversationCore.events_received`: typed events to act on and show.

Call order for one conversation::

    start() -> connection_opened() -> receive_frame()*  -> audio_ready() -> ...
    ... -> end() -> connection_closed()        (or start_failed() at any point before)

Every path ends in ``connection_closed()`` or ``start_failed()``, which emit exactly
one :class:`Disconnected` and leave the core ready for the next ``start()``.
Rules cite ``convai-protocol.md``, "Behaviour of the reference client".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from voicedesk.protocol.errors import (
    NORMAL_CLOSURE,
    USER_ENDED_REASON,
    DisconnectDetails,
    DisconnectReason,
    details_for_server_close,
    details_for_user_end,
    server_error_sentence,
)
from voicedesk.protocol.events import (
    AgentAudio,
    AgentResponse,
    AgentToolResponse,
    ClientMessage,
    ClientToolCall,
    ClientToolResult,
    ContextualUpdate,
    ConversationInitiationMetadata,
    Feedback,
    FeedbackScore,
    InitiationClientData,
    Interruption,
    MalformedFrame,
    McpToolApprovalResult,
    McpToolCall,
    MultimodalMessage,
    Ping,
    Pong,
    ServerError,
    ServerEvent,
    UserActivity,
    UserAudioChunk,
    UserMessage,
)
from voicedesk.protocol.formats import AudioFormat, UnsupportedFormatError, parse_audio_format
from voicedesk.protocol.parse import parse_server_frame, serialize

logger = logging.getLogger(__name__)
#: Malformed frames logged one by one before only every thousandth is.
MALFORMED_FRAMES_LOGGED = 10

AGENT_ENDED_REASON = "Agent ended conversation"
SERVER_ERROR_REASON = "Client closing after server error"
END_CALL_TOOL = "end_call"
#: The one error type after which the official client ends the conversation itself;
#: for every other error event it waits for the server's close (``convai-protocol.md``).
CLIENT_ENDS_ON_ERROR_TYPES = frozenset({"max_duration_exceeded"})


class Status(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"


class Mode(StrEnum):
    LISTENING = "listening"
    SPEAKING = "speaking"


@dataclass(frozen=True, slots=True)
class StatusChanged:
    status: Status


@dataclass(frozen=True, slots=True)
class ModeChanged:
    mode: Mode


@dataclass(frozen=True, slots=True)
class CanSendFeedbackChanged:
    can_send_feedback: bool


@dataclass(frozen=True, slots=True)
class FeedbackChanged:
    """What a like/dislike would rate now (``event_id``, the latest agent event) and its
    current rating (``None``: not rated). Sent when either changes."""

    event_id: int | None
    rating: FeedbackScore | None


@dataclass(frozen=True, slots=True)
class McpApprovalRequested:
    """An MCP tool call waits for the user's approval: answer it with
    :meth:`ConversationCore.send_mcp_approval` within ``call.approval_timeout_s``."""

    call: McpToolCall


@dataclass(frozen=True, slots=True)
class McpApprovalClosed:
    """The approval of ``tool_call_id`` is no longer wanted (answered, settled by the
    server, or the conversation ended): a prompt asking for it should go away."""

    tool_call_id: str


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    """The formats are known: the driver starts audio now, then calls ``audio_ready()``."""

    conversation_id: str
    agent_output_format: AudioFormat
    user_input_format: AudioFormat


@dataclass(frozen=True, slots=True)
class Connected:
    conversation_id: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    details: DisconnectDetails


@dataclass(frozen=True, slots=True)
class LatencyMeasured:
    """Round-trip latency to the agent service, from ``ping_event.ping_ms``."""

    ms: int


@dataclass(frozen=True, slots=True)
class ErrorReported:
    """A sentence for the user. ``fatal``: the client ends the conversation because of it;
    otherwise the conversation goes on until the server closes it (if it does)."""

    message: str
    error_type: str | None = None
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """The driver must close the socket with this code and reason."""

    code: int
    reason: str


CoreEvent = (
    ServerEvent
    | StatusChanged
    | ModeChanged
    | CanSendFeedbackChanged
    | FeedbackChanged
    | McpApprovalRequested
    | McpApprovalClosed
    | MetadataReceived
    | Connected
    | Disconnected
    | LatencyMeasured
    | ErrorReported
    | CloseRequested
)


class ConversationCore:
    """Protocol state of one conversation at a time. Not thread-safe: one driver owns it."""

    def __init__(self) -> None:
        self._status = Status.DISCONNECTED
        self._mode = Mode.LISTENING
        self._outgoing: list[str] = []
        self._events: list[CoreEvent] = []
        self._reset_conversation()

    def _reset_conversation(self) -> None:
        self._initiation: InitiationClientData | None = None
        self._conversation_id: str | None = None
        self._agent_output_format: AudioFormat | None = None
        self._user_input_format: AudioFormat | None = None
        self._interruption_event_id: int | None = None
        self._feedback_event_id: int | None = None
        self._ratings: dict[int, FeedbackScore] = {}
        self._shown_feedback: tuple[int | None, FeedbackScore | None] = (None, None)
        self._pending_tool_calls: dict[str, ClientToolCall] = {}
        self._pending_approvals: dict[str, McpToolCall] = {}
        self._ending: DisconnectDetails | None = None
        self._last_error: DisconnectDetails | None = None
        self._malformed_reported = False
        self._malformed_count = 0

    # ------------------------------------------------------------------ state, read-only

    @property
    def status(self) -> Status:
        return self._status

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def is_speaking(self) -> bool:
        return self._mode is Mode.SPEAKING

    @property
    def conversation_id(self) -> str | None:
        return self._conversation_id

    @property
    def agent_output_format(self) -> AudioFormat | None:
        return self._agent_output_format

    @property
    def user_input_format(self) -> AudioFormat | None:
        return self._user_input_format

    @property
    def can_send_feedback(self) -> bool:
        """Connected, with an agent event to rate (newest official client: any number of
        times; the rating can be changed or cleared)."""
        return self._status is Status.CONNECTED and self._feedback_event_id is not None

    @property
    def feedback_event_id(self) -> int | None:
        """The ``event_id`` a like/dislike would rate now (the latest agent event), or ``None``."""
        return self._feedback_event_id if self.can_send_feedback else None

    @property
    def feedback_rating(self) -> FeedbackScore | None:
        """The current rating of the latest agent event, ``None`` when it has none."""
        event_id = self.feedback_event_id
        return self._ratings.get(event_id) if event_id is not None else None

    @property
    def pending_approvals(self) -> tuple[McpToolCall, ...]:
        """MCP tool calls waiting for the user's approval, oldest first."""
        return tuple(self._pending_approvals.values())

    @property
    def interruption_event_id(self) -> int | None:
        return self._interruption_event_id

    @property
    def pending_tool_calls(self) -> tuple[ClientToolCall, ...]:
        return tuple(self._pending_tool_calls.values())

    # ------------------------------------------------------------------ outputs

    def data_to_send(self) -> list[str]:
        """Frames to write, oldest first; the list is emptied."""
        frames, self._outgoing = self._outgoing, []
        return frames

    def events_received(self) -> list[CoreEvent]:
        """Events to act on, oldest first; the list is emptied."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------ lifecycle inputs

    def start(self, initiation: InitiationClientData) -> None:
        """The user starts a conversation. Only from ``disconnected``."""
        if self._status is not Status.DISCONNECTED:
            raise RuntimeError(f"cannot start a conversation while {self._status}")
        self._reset_conversation()
        self._initiation = initiation
        self._set_status(Status.CONNECTING)

    def connection_opened(self) -> None:
        """The socket is open: the initiation message goes first (reference, "Connecting")."""
        if self._status is not Status.CONNECTING or self._initiation is None:
            return
        self._queue(self._initiation)

    def room_joined(self, conversation_id: str, audio_format: AudioFormat) -> None:
        """Over WebRTC the room stands for the metadata: its name gives the conversation
        id and both directions use ``audio_format`` (pcm_48000). Metadata that arrives
        afterwards is ignored as a repeat; before, it wins and this does nothing."""
        if self._status is not Status.CONNECTING or self._conversation_id is not None:
            return
        self._conversation_id = conversation_id
        self._agent_output_format = audio_format
        self._user_input_format = audio_format
        self._events.append(MetadataReceived(conversation_id, audio_format, audio_format))

    def audio_ready(self) -> None:
        """Audio runs in the negotiated formats (or the session is text-only): connected."""
        if self._status is Status.CONNECTING and self._conversation_id is not None:
            self._set_status(Status.CONNECTED)
            self._events.append(Connected(self._conversation_id))

    def end(self) -> bool:
        """The user ends the conversation. Returns ``False`` when there is nothing to end."""
        if self._status not in (Status.CONNECTING, Status.CONNECTED):
            return False
        self._begin_end(details_for_user_end(), NORMAL_CLOSURE, USER_ENDED_REASON)
        return True

    def connection_closed(self, code: int | None, reason: str | None) -> None:
        """The socket is closed (``code`` ``None``: lost without a close frame)."""
        if self._status is Status.DISCONNECTED:
            return
        details = self._ending or self._error_close(code, reason)
        if details.close_code is None and code is not None:
            details = DisconnectDetails(
                details.reason, details.message, code, reason, details.error_type
            )
        self._finish(details)

    def _error_close(self, code: int | None, reason: str | None) -> DisconnectDetails:
        """Details of a close the client did not ask for: an error event just before a
        close that is not a normal end says best what went wrong."""
        error = self._last_error
        if error is not None and code not in (None, NORMAL_CLOSURE):
            return DisconnectDetails(error.reason, error.message, code, reason, error.error_type)
        return details_for_server_close(code, reason)

    def start_failed(self, message: str, *, transient: bool = False) -> None:
        """Starting failed before a conversation existed (auth, DNS, refused, timeout);
        ``transient``: it may pass by itself (see :attr:`DisconnectDetails.transient`)."""
        if self._status is Status.DISCONNECTED:
            return
        self._finish(DisconnectDetails(DisconnectReason.ERROR, message, transient=transient))

    def fail(self, message: str, error_type: str | None = None) -> None:
        """The client itself must end the conversation with an error (e.g. audio died)."""
        if self._status not in (Status.CONNECTING, Status.CONNECTED):
            return
        details = DisconnectDetails(DisconnectReason.ERROR, message, error_type=error_type)
        self._events.append(ErrorReported(message, error_type, fatal=True))
        self._begin_end(details, NORMAL_CLOSURE, "Client error")

    # ------------------------------------------------------------------ audio inputs

    def playback_started(self) -> None:
        if self._status is Status.CONNECTED:
            self._set_mode(Mode.SPEAKING)

    def playback_stopped(self) -> None:
        self._set_mode(Mode.LISTENING)

    # ------------------------------------------------------------------ user inputs

    def send_user_audio(self, audio: bytes) -> bool:
        """Queue a microphone chunk; only once connected (formats known)."""
        return self._send_if_connected(UserAudioChunk(audio))

    def send_user_message(self, text: str) -> bool:
        return self._send_if_connected(UserMessage(text))

    def send_contextual_update(self, text: str, context_id: str | None = None) -> bool:
        """Background for the agent; with ``context_id`` only the latest update of that
        id stays in the agent's context."""
        return self._send_if_connected(ContextualUpdate(text, context_id))

    def send_user_activity(self) -> bool:
        return self._send_if_connected(UserActivity())

    def send_feedback(self, like: bool) -> bool:
        """Rate the latest agent event. Pressing the rating it already has clears it
        (``score: null``), as the newest official client does. ``False`` when there is
        nothing to rate."""
        score: FeedbackScore = "like" if like else "dislike"
        return self._rate(None if self.feedback_rating == score else score)

    def clear_feedback(self) -> bool:
        """Clear the latest agent event's rating; ``False`` when it has none."""
        return self.feedback_rating is not None and self._rate(None)

    def _rate(self, score: FeedbackScore | None) -> bool:
        event_id = self.feedback_event_id
        if event_id is None:
            return False
        self._queue(Feedback(score, event_id))
        if score is None:
            self._ratings.pop(event_id, None)
        else:
            self._ratings[event_id] = score
        self._update_feedback(True)
        return True

    def send_mcp_approval(self, tool_call_id: str, approved: bool) -> bool:
        """Answer an MCP tool call awaiting approval. ``False`` when it is not waiting
        (answered, settled, or the conversation is over)."""
        if self._pending_approvals.pop(tool_call_id, None) is None:
            return False
        self._events.append(McpApprovalClosed(tool_call_id))
        return self._send_if_connected(McpToolApprovalResult(tool_call_id, approved))

    def send_multimodal_message(self, text: str | None, file_id: str | None) -> bool:
        """Text with a file uploaded earlier through the REST API (its ``file_id``)."""
        return self._send_if_connected(MultimodalMessage(text, file_id))

    def send_tool_result(self, tool_call_id: str, result: str, *, is_error: bool) -> bool:
        """Answer a pending tool call. ``False`` if it is not pending (answered, or ended)."""
        if tool_call_id not in self._pending_tool_calls:
            return False
        del self._pending_tool_calls[tool_call_id]
        return self._send_if_connected(ClientToolResult(tool_call_id, result, is_error))

    # ------------------------------------------------------------------ wire input

    def receive_frame(self, frame: str | bytes) -> None:
        """One frame from the server. Never raises."""
        if self._status is Status.DISCONNECTED:
            return
        self.receive_event(parse_server_frame(frame))

    def receive_event(self, event: ServerEvent) -> None:
        match event:
            case ConversationInitiationMetadata():
                self._on_metadata(event)
            case AgentAudio():
                self._on_audio(event)
            case AgentResponse():
                self._events.append(event)
                self._on_agent_response(event)
            case Interruption():
                self._on_interruption(event)
            case Ping():
                self._on_ping(event)
            case ClientToolCall():
                self._on_tool_call(event)
            case AgentToolResponse():
                self._events.append(event)
                # Whatever its is_error says, and in either form (reference, "Disconnect
                # details"): the agent hung up.
                if event.tool_name == END_CALL_TOOL:
                    self._agent_ended()
            case McpToolCall():
                self._on_mcp_tool_call(event)
            case ServerError():
                self._on_server_error(event)
            case MalformedFrame():
                self._on_malformed(event)
            case _:
                self._events.append(event)

    # ------------------------------------------------------------------ handlers

    def _on_metadata(self, event: ConversationInitiationMetadata) -> None:
        if self._status is not Status.CONNECTING or self._conversation_id is not None:
            logger.debug("ignoring repeated conversation metadata")
            return
        try:
            output_format = parse_audio_format(event.agent_output_audio_format)
            input_format = parse_audio_format(event.user_input_audio_format)
        except UnsupportedFormatError as exc:
            self.fail(
                f"The agent uses an audio format voicedesk cannot handle ({exc}). "
                "Choose a PCM or μ-law format in the agent's voice settings.",
                "unsupported_audio_format",
            )
            return
        self._conversation_id = event.conversation_id
        self._agent_output_format = output_format
        self._user_input_format = input_format
        self._events.append(MetadataReceived(event.conversation_id, output_format, input_format))

    def _on_audio(self, event: AgentAudio) -> None:
        # Interruption filter: strictly older audio belongs to a reply the user cut off;
        # an equal id is the new reply and plays.
        last = self._interruption_event_id
        if last is not None and event.event_id is not None and event.event_id < last:
            logger.debug(
                "dropping stale audio of event %s (interrupted at %s)", event.event_id, last
            )
            return
        self._events.append(event)
        self._latest_agent_event(event.event_id)

    def _on_agent_response(self, event: AgentResponse) -> None:
        self._latest_agent_event(event.event_id)

    def _latest_agent_event(self, event_id: int | None) -> None:
        """Feedback rates the latest agent event: the last response, or in voice the last
        audio chunk kept (reference, "Feedback")."""
        if event_id is None or event_id == self._feedback_event_id:
            return
        was = self.can_send_feedback
        self._feedback_event_id = event_id
        self._update_feedback(was)

    def _on_interruption(self, event: Interruption) -> None:
        if event.event_id is not None:
            previous = self._interruption_event_id
            if previous is None or event.event_id > previous:
                self._interruption_event_id = event.event_id
        self._events.append(event)
        self._set_mode(Mode.LISTENING)

    def _on_ping(self, event: Ping) -> None:
        # Answer at once, whatever the state (reference, "Ping").
        self._queue(Pong(event.event_id))
        if event.ping_ms is not None:
            self._events.append(LatencyMeasured(event.ping_ms))

    def _on_tool_call(self, event: ClientToolCall) -> None:
        if event.tool_call_id in self._pending_tool_calls:
            logger.warning("ignoring repeated client tool call %s", event.tool_call_id)
            return
        self._pending_tool_calls[event.tool_call_id] = event
        self._events.append(event)

    def _on_mcp_tool_call(self, event: McpToolCall) -> None:
        self._events.append(event)
        call_id = event.tool_call_id
        if event.state == "awaiting_approval":
            if call_id not in self._pending_approvals:
                self._pending_approvals[call_id] = event
                self._events.append(McpApprovalRequested(event))
        elif self._pending_approvals.pop(call_id, None) is not None:
            self._events.append(McpApprovalClosed(call_id))

    def _on_server_error(self, event: ServerError) -> None:
        # debug_message and details are for the log only (reference, "Close codes and errors").
        logger.warning(
            "agent error event: code %s, type %s, debug %r, details %r",
            event.code,
            event.error_type,
            event.debug_message,
            event.details,
        )
        sentence = server_error_sentence(
            event.message, reason=event.reason, error_type=event.error_type
        )
        self._events.append(event)
        if self._status not in (Status.CONNECTING, Status.CONNECTED):
            return
        details = DisconnectDetails(
            DisconnectReason.ERROR, sentence, event.code, event.reason, event.error_type
        )
        fatal = event.error_type in CLIENT_ENDS_ON_ERROR_TYPES
        self._events.append(ErrorReported(sentence, event.error_type, fatal=fatal))
        if fatal:
            self._begin_end(details, NORMAL_CLOSURE, SERVER_ERROR_REASON)
        else:
            # The server's close ends the conversation; its details then tell this error.
            self._last_error = details

    def _on_malformed(self, event: MalformedFrame) -> None:
        # A burst of them (10,000 in the fault matrix) must not rotate the log away:
        # the first few are logged, then one in a thousand with the count.
        self._malformed_count += 1
        n = self._malformed_count
        if n <= MALFORMED_FRAMES_LOGGED or n % 1000 == 0:
            logger.warning("ignoring malformed frame #%d (%s): %s", n, event.reason, event.excerpt)
        self._events.append(event)
        if not self._malformed_reported:
            self._malformed_reported = True
            self._events.append(
                ErrorReported(
                    "The agent sent a message voicedesk could not read; it was skipped and "
                    "the conversation goes on.",
                    "malformed_frame",
                )
            )

    def _agent_ended(self) -> None:
        if self._status not in (Status.CONNECTING, Status.CONNECTED):
            return
        details = DisconnectDetails(
            DisconnectReason.AGENT,
            "The agent ended the conversation.",
            NORMAL_CLOSURE,
            AGENT_ENDED_REASON,
        )
        self._begin_end(details, NORMAL_CLOSURE, AGENT_ENDED_REASON)

    # ------------------------------------------------------------------ helpers

    def _begin_end(self, details: DisconnectDetails, code: int, reason: str) -> None:
        self._ending = details
        self._set_status(Status.DISCONNECTING)
        self._set_mode(Mode.LISTENING)
        self._events.append(CloseRequested(code, reason))

    def _finish(self, details: DisconnectDetails) -> None:
        had_feedback = self.can_send_feedback
        self._set_mode(Mode.LISTENING)
        self._status = Status.DISCONNECTED
        logger.info("conversation ended: %s (%s)", details.reason, details.message)
        self._events.append(StatusChanged(Status.DISCONNECTED))
        if had_feedback:
            self._events.append(CanSendFeedbackChanged(False))
            self._events.append(FeedbackChanged(None, None))
        for call_id in self._pending_approvals:
            self._events.append(McpApprovalClosed(call_id))
        self._events.append(Disconnected(details))
        self._reset_conversation()

    def _send_if_connected(self, msg: ClientMessage) -> bool:
        if self._status is not Status.CONNECTED:
            return False
        self._queue(msg)
        return True

    def _queue(self, msg: ClientMessage) -> None:
        self._outgoing.append(serialize(msg))

    def _set_status(self, status: Status) -> None:
        logger.info("status %s -> %s", self._status, status)
        was_feedback = self.can_send_feedback
        self._status = status
        self._events.append(StatusChanged(status))
        self._update_feedback(was_feedback)

    def _set_mode(self, mode: Mode) -> None:
        if mode is self._mode:
            return
        logger.debug("mode %s -> %s", self._mode, mode)
        self._mode = mode
        self._events.append(ModeChanged(mode))

    def _update_feedback(self, was: bool) -> None:
        now = self.can_send_feedback
        if now != was:
            self._events.append(CanSendFeedbackChanged(now))
        shown = (self.feedback_event_id, self.feedback_rating)
        if shown != self._shown_feedback:
            self._shown_feedback = shown
            self._events.append(FeedbackChanged(*shown))
