"""A local agent server on loopback that speaks the ElevenLabs conversation protocol.

It follows the official contract (``agent.asyncapi.yaml``, read with
``convai-protocol.md``) as the real service does, not as our client happens to
behave: it sends only the events the conversation's ``client_events`` enable (the
contract's defaults unless the initiation asks for others), accepts every client
message of the contract and checks them (a non-string tool result closes with 1008,
as the service does), runs a server (webhook) tool and MCP tools that wait for the
user's approval, and can be scripted by tests (send any frame, close with any code,
drop the TCP connection, stall).

Endpoints, on ``http://HOST:PORT``:

- ``GET /v1/convai/conversation/get-signed-url?agent_id=…`` (header ``xi-api-key``):
  ``{"signed_url": "ws://HOST:PORT/v1/convai/conversation?agent_id=…&conversation_signature=…"}``;
  401 ``invalid_api_key`` when a key is configured and the header does not match.
- ``ws://HOST:PORT/v1/convai/conversation?agent_id=…``: the conversation.
  With a key configured, the agent is private: a valid ``conversation_signature``
  is required, else the server closes with 1008.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voicedesk.audio import codec
from voicedesk.localagent import brain
from voicedesk.localagent.voice import VoiceKind, synthesize
from voicedesk.protocol import catalog
from voicedesk.protocol.formats import AudioFormat, parse_audio_format

logger = logging.getLogger(__name__)

CONVERSATION_PATH = "/v1/convai/conversation"

#: Called with ``("server", message)`` for every message the agent itself sends and
#: ``("client", message)`` for every decoded message a client sent it (audio chunks
#: included). Frames a test scripts with :meth:`AgentSession.send` are not reported:
#: they may break the contract on purpose. The test suite validates what it sees here
#: against the official contract.
FrameObserver = Callable[[str, Any], None]
frame_observers: list[FrameObserver] = []


def _observe(direction: str, message: Any) -> None:
    for observer in frame_observers:
        observer(direction, message)


SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
TOKEN_PATH = "/v1/convai/conversation/token"

#: The events a real agent sends when neither its settings nor the initiation's
#: ``client_events`` name others: the contract's default list
#: (``ConversationConfigOverride.client_events``), plus ``agent_response_correction``,
#: which the issue (item 8) says a real agent sends by default when the user
#: interrupts it. ``convai-protocol.md`` ("Which events a real agent sends",
#: corrected) lists it among the opt-in events; we follow the issue.
#: Without a full record (:attr:`AgentConfig.record`), the pongs kept per call.
_KEPT_UNRECORDED = 50

DEFAULT_EVENTS: tuple[str, ...] = (*catalog.DEFAULT_CLIENT_EVENTS, "agent_response_correction")

#: Sent whenever they happen, whatever ``client_events`` says: the calls of the client's
#: own tools and errors (``catalog.ALWAYS_SENT_EVENTS``), plus ``mcp_tool_call``: it is
#: not in the contract's default list, but an MCP tool awaiting approval cannot be
#: approved without it, so an agent that uses MCP tools sends it.
ALWAYS_SENT: frozenset[str] = frozenset((*catalog.ALWAYS_SENT_EVENTS, "mcp_tool_call"))

#: What the agent answers to a ``multimodal_message`` carrying a file.
FILES_NOT_SUPPORTED = "I got your file, but this demo agent cannot read files."


@dataclass(slots=True)
class AgentConfig:
    """How the local agent behaves. Times in seconds unless named ``_ms``.

    ``client_events``: the event types the agent is configured to send (its platform
    settings); ``None`` is the contract's default (:data:`DEFAULT_EVENTS`). The
    initiation's ``conversation_config_override.conversation.client_events`` replaces
    it when ``allow_overrides`` is true. ``approval_timeout_s``: how long an MCP tool
    call waits for ``mcp_tool_approval_result``. ``tool_latency_s``: how long the
    agent's own tools (webhook, MCP) pretend to work.
    """

    first_message: str = brain.FIRST_MESSAGE
    agent_output_audio_format: str = "pcm_16000"
    user_input_audio_format: str = "pcm_16000"
    voice: VoiceKind = VoiceKind.AUTO
    api_key: str | None = field(default=None, repr=False)
    chunk_ms: int = 250
    send_speedup: float = 4.0  # audio is sent this many times faster than real time
    ping_interval_s: float | None = 2.0
    tool_timeout_s: float = 3.0
    initiation_timeout_s: float = 5.0
    allow_overrides: bool = True
    send_metadata: bool = True
    speak_first_message: bool = True
    barge_in_level: float = 0.02  # RMS of full scale that counts as the user speaking
    barge_in_ms: float = 60.0
    end_of_turn_ms: float = 600.0
    vad_interval_ms: float = 100.0
    tentative_interval_ms: float = 300.0  # of speech, between tentative transcripts
    max_duration_s: float | None = None
    client_events: tuple[str, ...] | None = None
    approval_timeout_s: float = 30.0
    tool_latency_s: float = 0.2
    #: Keep a full record of each call: every byte of the user's audio and when it came,
    #: the ids of the audio sent, every message and pong (tests and benchmarks read
    #: them). ~32 kB a second of a call at 16 kHz: the demo agent of the app and
    #: ``voicedesk localagent`` keep no audio and only the latest messages and pongs.
    record: bool = True

    def __post_init__(self) -> None:
        if self.client_events is not None:
            unknown = set(self.client_events) - set(catalog.CLIENT_EVENT_TYPES)
            if unknown:
                raise ValueError(f"unknown client events: {sorted(unknown)}")


@dataclass(slots=True)
class ToolResult:
    """A client tool's answer (``client_tool_result``)."""

    tool_call_id: str
    result: Any
    is_error: Any


@dataclass(slots=True)
class AgentToolCall:
    """A tool the agent ran itself (webhook, system or MCP; not a client tool).

    ``state``: for MCP tools the last ``mcp_tool_call`` state sent, else ``"done"`` once
    it finished. ``approved``: for an MCP tool needing approval, the user's answer
    (``None``: none came in time).
    """

    tool_call_id: str
    tool_name: str
    tool_type: str
    parameters: dict[str, Any]
    state: str = "started"
    result: str | None = None
    is_error: bool = False
    approved: bool | None = None


@dataclass(slots=True)
class _Speech:
    """One agent response being delivered: when its audio started and for how long it
    plays (voice), or how much of it was streamed (text), to tell what the user heard."""

    event_id: int
    text: str
    started_at: float | None = None  # time.monotonic() of the first audio frame
    duration_s: float = 0.0
    shown: int = 0  # text-only: characters streamed so far

    def heard(self, now: float) -> str:
        if self.started_at is None:
            return self.text[: self.shown].rstrip()
        if self.duration_s <= 0:
            return self.text
        return brain.heard_prefix(self.text, (now - self.started_at) / self.duration_s)


class AgentSession:
    """One conversation on the server side. Tests read what it recorded and script it."""

    def __init__(self, server: LocalAgentServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.config = server.config
        self.conversation_id = f"conv_local_{secrets.token_hex(6)}"
        self.initiation: dict[str, Any] | None = None
        self.dynamic_variables: dict[str, Any] = {}
        self.text_only = False
        #: The event types this conversation sends besides :data:`ALWAYS_SENT`.
        self.client_events: frozenset[str] = frozenset(
            DEFAULT_EVENTS if self.config.client_events is None else self.config.client_events
        )
        self.output_format: AudioFormat = parse_audio_format(self.config.agent_output_audio_format)
        self.input_format: AudioFormat = parse_audio_format(self.config.user_input_audio_format)
        # What the client sent, in order (audio chunks are summed up, not listed).
        self.received: deque[dict[str, Any]] = deque(maxlen=None if self.config.record else 200)
        self.user_messages: list[str] = []
        self.contextual_updates: list[str] = []
        self.contexts: dict[str, str] = {}  # context_id -> its latest text
        self.user_activity_count = 0
        # Every feedback message, in order (score None clears); ratings: the current state.
        self.feedback: list[tuple[str | None, int]] = []
        self.ratings: dict[int, str] = {}
        self.files: list[str] = []  # file ids of multimodal messages
        self.tool_results: dict[str, ToolResult] = {}
        self.agent_tool_calls: list[AgentToolCall] = []
        self.mcp_approvals: dict[str, bool] = {}  # tool_call_id -> is_approved, as received
        self.pongs: dict[int, float] = {}
        self.audio_chunks = 0
        self.audio_in = bytearray()  # raw bytes, in the user input format
        # (arrival time.monotonic(), len(audio_in) after the chunk): for latency benchmarks
        self.audio_arrivals: list[tuple[float, int]] = []
        self.agent_responses: dict[int, str] = {}
        # event id of an interrupted response -> the words the user heard of it
        self.corrections: dict[int, str] = {}
        self.interruptions: list[int] = []
        self.sent_audio_event_ids: list[int] = []
        # event id -> time.monotonic() when the reply's first audio frame was sent
        self.first_audio_sent_at: dict[int, float] = {}
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._event_ids = itertools.count(1)
        self._tool_ids = itertools.count(1)
        self._speaking: asyncio.Task[None] | None = None
        self._speech: _Speech | None = None
        self._speaking_until = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tool_waiters: dict[str, asyncio.Future[ToolResult | None]] = {}
        self._approval_waiters: dict[str, asyncio.Future[bool | None]] = {}
        self._ping_sent: dict[int, float] = {}
        self._last_rtt_ms: int | None = None
        self._voiced_ms = 0.0
        self._silence_ms = 0.0
        self._utterance_ms = 0.0
        self._utterance_id = 0
        self._since_tentative_ms = 0.0
        self._since_vad_ms = 0.0
        self._stalled = False
        self._turn_lock = asyncio.Lock()

    # ------------------------------------------------------------------ scripting API

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Send any frame: a dict as JSON text, a str as text, bytes as a binary frame.

        For tests that script the agent, possibly against the contract on purpose: not
        filtered by ``client_events`` and not reported to :data:`frame_observers`."""
        frame = json.dumps(message) if isinstance(message, dict) else message
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(frame)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._cancel_speaking()
        await self.ws.close(code, reason)

    def drop(self) -> None:
        """Cut the TCP connection without a close frame, as a network failure would."""
        self._cancel_speaking()
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    def stall(self) -> None:
        """Stop reading and sending anything (keepalive pongs included), as a hung peer."""
        self._stalled = True
        self._cancel_speaking()
        transport = self.ws.transport
        if transport is not None:
            transport.pause_reading()

    async def say(self, text: str) -> int:
        """Speak ``text`` as a new agent turn; returns its event id."""
        event_id = next(self._event_ids)
        await self._start_speaking(text, event_id)
        return event_id

    async def interrupt(self) -> int | None:
        """Stop speaking and send ``interruption`` (and ``agent_response_correction``), as
        when the user talks over the agent. Returns the interruption's event id (``None``
        when the agent was not speaking)."""
        if not self.is_speaking:
            return None
        turn = next(self._event_ids)
        await self._interrupt_if_speaking(turn)
        return turn

    async def call_tool(
        self, name: str, parameters: dict[str, Any] | None = None
    ) -> ToolResult | None:
        """Call a client tool and wait for its result (``None`` on timeout)."""
        return await self._call_tool(
            brain.ToolRequest(name, parameters or {}), next(self._event_ids)
        )

    async def call_mcp_tool(
        self, name: str, parameters: dict[str, Any] | None = None, *, needs_approval: bool = True
    ) -> AgentToolCall:
        """Run a (pretend) MCP tool as the agent does: with ``needs_approval``, wait for
        the user's ``mcp_tool_approval_result`` first (``config.approval_timeout_s``)."""
        tool = brain.ToolRequest(name, parameters or {}, brain.ToolKind.MCP, needs_approval)
        return await self._run_mcp_tool(tool, next(self._event_ids))

    async def wait_for(
        self, predicate: Callable[[AgentSession], bool], timeout: float = 5.0
    ) -> None:
        """Wait until ``predicate(self)`` holds; ``TimeoutError`` otherwise."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def messages_of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("type") == msg_type]

    @property
    def is_speaking(self) -> bool:
        """The agent's audio would still be audible at the client (or is still being sent)."""
        running = self._speaking is not None and not self._speaking.done()
        return running or time.monotonic() < self._speaking_until

    # ------------------------------------------------------------------ sending

    def _enabled(self, event_type: str) -> bool:
        """Whether this conversation sends ``event_type``: the contract's ``client_events``
        (the agent's list or the initiation's), plus :data:`ALWAYS_SENT`."""
        return event_type in ALWAYS_SENT or event_type in self.client_events

    async def _emit(self, message: dict[str, Any]) -> bool:
        """Send one message of the agent's own: every server message goes through here.
        A type this conversation does not send is dropped silently; the rest is reported
        to :data:`frame_observers`, then sent. Returns whether it was sent."""
        if self._stalled or not self._enabled(str(message.get("type"))):
            return False
        _observe("server", message)
        try:
            await self.ws.send(json.dumps(message))
        except ConnectionClosed:
            return False
        return True

    async def _reject(self, what: str = "") -> None:
        """Close with 1008, as the service does on a message that breaks the contract."""
        await self.ws.close(1008, f"Invalid message received: {what}" if what else _INVALID)

    async def _error_and_close(
        self, code: int, error_type: str, reason: str, message: str | None = None
    ) -> None:
        """Send an ``error`` event and close with ``code``. ``reason`` is the generic
        sentence every client gets; ``message`` only where a real agent gives specifics
        the user must act on (contract ``ErrorData``; ``convai-protocol.md``, corrected)."""
        event: dict[str, Any] = {"code": code, "error_type": error_type, "reason": reason}
        if message is not None:
            event["message"] = message
        await self._emit({"type": "error", "error_event": event})
        await self.ws.close(code, _close_reason(message or reason))

    # ------------------------------------------------------------------ conversation

    async def run(self) -> None:
        try:
            if not await self._authorize():
                return
            if not await self._receive_initiation():
                return
            if self.config.send_metadata:
                await self._send_metadata()
                await self._send_mcp_status()
                self._spawn(self._pinger())
                if self.config.max_duration_s is not None:
                    self._spawn(self._duration_limit(self.config.max_duration_s))
                if self.config.speak_first_message and self.config.first_message:
                    first = brain.fill_variables(self._first_message(), self.dynamic_variables)
                    await self.say(first)
            async for frame in self.ws:
                await self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            speaking = self._speaking
            self._cancel_speaking()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if speaking is not None:
                tasks.append(speaking)
            # Wait for the turns to unwind, so no synthesiser outlives the conversation.
            await asyncio.gather(*tasks, return_exceptions=True)
            waiters: list[asyncio.Future[Any]] = [
                *self._tool_waiters.values(),
                *self._approval_waiters.values(),
            ]
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)  # no answer will come any more
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self.closed.set()
            self._notify()

    async def _authorize(self) -> bool:
        if self.config.api_key is None:
            return True
        request = self.ws.request
        query = parse_qs(urlsplit(request.path if request else "").query)
        signature = (query.get("conversation_signature") or [""])[0]
        if signature in self.server.signatures:
            return True
        await self.ws.close(1008, "Authentication failed: this agent requires a signed URL")
        return False

    def _first_message(self) -> str:
        override = self._override("agent", "first_message")
        return override if isinstance(override, str) else self.config.first_message

    def _override(self, section: str, key: str) -> Any:
        part = self._override_section(section)
        return part.get(key)

    def _override_section(self, section: str) -> dict[str, Any]:
        initiation = self.initiation or {}
        overrides = initiation.get("conversation_config_override") or {}
        part = overrides.get(section) if isinstance(overrides, dict) else None
        return part if isinstance(part, dict) else {}

    async def _receive_initiation(self) -> bool:
        try:
            async with asyncio.timeout(self.config.initiation_timeout_s):
                frame = await self.ws.recv()
        except TimeoutError:
            return True  # the service goes on with the agent's defaults
        try:
            msg = json.loads(frame)
        except (TypeError, ValueError):
            await self._reject()
            return False
        _observe("client", msg)
        if not isinstance(msg, dict) or msg.get("type") != "conversation_initiation_client_data":
            await self._on_message(msg)
            return True
        self.initiation = msg
        self._record(msg)
        variables = msg.get("dynamic_variables") or {}
        overrides = msg.get("conversation_config_override") or {}
        if not isinstance(variables, dict):
            await self._reject("dynamic_variables")
            return False
        if not isinstance(overrides, dict):
            await self._reject("conversation_config_override")
            return False
        self.dynamic_variables = variables
        conversation = self._override_section("conversation")
        self.text_only = bool(conversation.get("text_only", False))
        if not await self._apply_client_events(conversation.get("client_events")):
            return False
        overridden = [
            key
            for section in ("agent", "tts")
            for key, value in self._override_section(section).items()
            if value is not None
        ]
        if overridden and not self.config.allow_overrides:
            await self._error_and_close(
                1008,
                "override_error",
                "The conversation's configuration override is not allowed.",
                f"Override for field '{overridden[0]}' is not allowed by config.",
            )
            return False
        missing = brain.required_variables(self._first_message()) - set(variables)
        if missing:
            await self._error_and_close(
                1008,
                "missing_dynamic_variable",
                "A required dynamic variable is missing.",
                f"Missing required dynamic variables in first message: {sorted(missing)}",
            )
            return False
        return True

    async def _apply_client_events(self, requested: Any) -> bool:
        """The initiation's ``client_events`` (contract ``ConversationConfigOverride``):
        at least one known event type; replaces the agent's list when it allows overrides."""
        if requested is None:
            return True
        known = set(catalog.CLIENT_EVENT_TYPES)
        if (
            not isinstance(requested, list)
            or not requested
            or not all(isinstance(e, str) and e in known for e in requested)
        ):
            await self._reject("client_events")
            return False
        if self.config.allow_overrides:
            self.client_events = frozenset(requested)
        return True

    async def _send_metadata(self) -> None:
        await self._emit(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": self.conversation_id,
                    "agent_output_audio_format": self.output_format.name,
                    "user_input_audio_format": self.input_format.name,
                },
            }
        )

    async def _send_mcp_status(self) -> None:
        """One connected integration: the pretend MCP server (opt-in event)."""
        await self._emit(
            {
                "type": "mcp_connection_status",
                "mcp_connection_status": {
                    "integrations": [
                        {
                            "integration_id": brain.MCP_SERVICE_ID,
                            "integration_type": "mcp_server",
                            "is_connected": True,
                            "tool_count": len(brain.MCP_TOOLS),
                        }
                    ]
                },
            }
        )

    async def _pinger(self) -> None:
        interval = self.config.ping_interval_s
        if interval is None:
            return
        for event_id in itertools.count(1):
            await asyncio.sleep(interval)
            if self._stalled:
                return
            self._ping_sent[event_id] = time.monotonic()
            await self._emit(
                {"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": self._last_rtt_ms}}
            )

    async def _duration_limit(self, seconds: float) -> None:
        # The contract's WebSocketCloseCode: maximum duration is a normal closure (1000).
        await asyncio.sleep(seconds)
        await self._error_and_close(
            1000, "max_duration_exceeded", "Conversation has exceeded maximum duration."
        )

    # ------------------------------------------------------------------ client messages

    async def _on_frame(self, frame: str | bytes) -> None:
        if self._stalled:
            return
        try:
            msg = json.loads(frame)
        except (TypeError, ValueError):
            await self._reject()
            return
        _observe("client", msg)
        await self._on_message(msg)

    async def _on_message(self, msg: Any) -> None:
        """Handle one decoded client message: every one of the contract's client messages
        is accepted; an unknown type or a malformed message closes with 1008."""
        if not isinstance(msg, dict):
            await self._reject()
            return
        if "user_audio_chunk" in msg:
            await self._on_audio(msg["user_audio_chunk"])
            return
        self._record(msg)
        handler = {
            "pong": self._on_pong,
            "client_tool_result": self._on_tool_result,
            "user_message": self._on_user_message,
            "multimodal_message": self._on_multimodal_message,
            "contextual_update": self._on_contextual_update,
            "user_activity": self._on_user_activity,
            "feedback": self._on_feedback,
            "mcp_tool_approval_result": self._on_mcp_approval,
            "conversation_initiation_client_data": self._on_late_initiation,
        }.get(str(msg.get("type")))
        if handler is None:
            await self._reject(f"unknown type {msg.get('type')!r}")
            return
        await handler(msg)

    def _record(self, msg: dict[str, Any]) -> None:
        self.received.append(msg)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    async def _on_late_initiation(self, msg: dict[str, Any]) -> None:
        await self._reject("conversation already initiated")

    async def _on_pong(self, msg: dict[str, Any]) -> None:
        event_id = msg.get("event_id")
        sent = self._ping_sent.pop(event_id, None) if isinstance(event_id, int) else None
        if sent is not None:
            self._last_rtt_ms = round(1000 * (time.monotonic() - sent))
            self.pongs[event_id] = self._last_rtt_ms  # type: ignore[index]
            if not self.config.record and len(self.pongs) > _KEPT_UNRECORDED:
                del self.pongs[next(iter(self.pongs))]  # the oldest

    async def _on_tool_result(self, msg: dict[str, Any]) -> None:
        result = msg.get("result")
        if not isinstance(result, str):
            # As the service: a non-string result is a contract violation.
            await self._reject("client tool result must be a string")
            return
        tool_call_id = str(msg.get("tool_call_id"))
        outcome = ToolResult(tool_call_id, result, msg.get("is_error", False))
        self.tool_results[tool_call_id] = outcome
        waiter = self._tool_waiters.pop(tool_call_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    async def _on_user_message(self, msg: dict[str, Any]) -> None:
        text = msg.get("text")
        if text is None:
            return  # the contract's "null for text-only mode signal": nothing to answer
        if not isinstance(text, str):
            await self._reject("user_message")
            return
        await self._user_turn(text)

    async def _on_multimodal_message(self, msg: dict[str, Any]) -> None:
        """Text (a ``user_message``) and/or a file reference (``file_input``)."""
        text_part, file_part = msg.get("text"), msg.get("file")
        text = text_part.get("text") if isinstance(text_part, dict) else None
        file_id = file_part.get("file_id") if isinstance(file_part, dict) else None
        if (
            (text_part is not None and not isinstance(text_part, dict))
            or (file_part is not None and not isinstance(file_id, str))
            or (text is not None and not isinstance(text, str))
        ):
            await self._reject("multimodal_message")
            return
        if isinstance(file_id, str):
            self.files.append(file_id)
        if text is None and file_id is None:
            return
        await self._user_turn(text, FILES_NOT_SUPPORTED if file_id is not None else "")

    async def _user_turn(self, text: str | None, preface: str = "") -> None:
        """A typed turn: it interrupts the agent, then gets an answer."""
        if text is not None:
            self.user_messages.append(text)
        turn = next(self._event_ids)
        await self._interrupt_if_speaking(turn)
        self._spawn(self._respond(text, turn, preface))

    async def _on_contextual_update(self, msg: dict[str, Any]) -> None:
        # Context never interrupts the agent (reference, client -> server).
        text, context_id = msg.get("text"), msg.get("context_id")
        if not isinstance(text, str) or not isinstance(context_id, str | None):
            await self._reject("contextual_update")
            return
        self.contextual_updates.append(text)
        if context_id is not None:
            self.contexts[context_id] = text  # only the latest of an id counts

    async def _on_user_activity(self, msg: dict[str, Any]) -> None:
        self.user_activity_count += 1

    async def _on_feedback(self, msg: dict[str, Any]) -> None:
        """``score`` like, dislike or null (null clears the rating of ``event_id``)."""
        score, event_id = msg.get("score"), msg.get("event_id")
        valid_score = "score" in msg and (score is None or score in catalog.FEEDBACK_SCORES)
        if not valid_score or not isinstance(event_id, int) or isinstance(event_id, bool):
            await self._reject("feedback")
            return
        self.feedback.append((score, event_id))
        if score is None:
            self.ratings.pop(event_id, None)
        else:
            self.ratings[event_id] = str(score)

    async def _on_mcp_approval(self, msg: dict[str, Any]) -> None:
        tool_call_id, approved = msg.get("tool_call_id"), msg.get("is_approved")
        if not isinstance(tool_call_id, str) or not isinstance(approved, bool):
            await self._reject("mcp_tool_approval_result")
            return
        self.mcp_approvals[tool_call_id] = approved
        waiter = self._approval_waiters.pop(tool_call_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(approved)

    async def _on_audio(self, data: Any) -> None:
        try:
            raw = base64.b64decode(data, validate=True)
        except (TypeError, ValueError):
            await self._reject("user_audio_chunk")
            return
        self.audio_chunks += 1
        if self.config.record:
            self.audio_in.extend(raw)
            self.audio_arrivals.append((time.monotonic(), len(self.audio_in)))
        self._notify()
        samples = codec.decode(raw, self.input_format)
        chunk_ms = 1000.0 * samples.size / self.input_format.sample_rate
        level = codec.rms(samples)
        voiced = level >= self.config.barge_in_level
        self._since_vad_ms += chunk_ms
        if self._since_vad_ms >= self.config.vad_interval_ms:
            self._since_vad_ms = 0.0
            score = min(1.0, level / (self.config.barge_in_level * 4))
            await self._emit(
                {"type": "vad_score", "vad_score_event": {"vad_score": round(score, 3)}}
            )
        if voiced:
            await self._on_voiced(chunk_ms)
            return
        self._voiced_ms = 0.0
        if self._utterance_ms > 0:
            self._silence_ms += chunk_ms
            if self._silence_ms >= self.config.end_of_turn_ms:
                spoken_ms, self._utterance_ms = self._utterance_ms, 0.0
                if spoken_ms >= 150:
                    self._spawn(self._on_speech_turn(spoken_ms, self._utterance_id))

    async def _on_voiced(self, chunk_ms: float) -> None:
        """The user is speaking: the utterance's event id is taken when it starts, and
        its tentative transcripts, its barge-in and its final transcript all carry it."""
        if self._utterance_ms == 0:
            self._utterance_id = next(self._event_ids)
            self._since_tentative_ms = 0.0
        self._voiced_ms += chunk_ms
        self._utterance_ms += chunk_ms
        self._silence_ms = 0.0
        self._since_tentative_ms += chunk_ms
        if self._since_tentative_ms >= self.config.tentative_interval_ms:
            self._since_tentative_ms = 0.0
            await self._emit(
                {
                    "type": "tentative_user_transcript",
                    "tentative_user_transcription_event": {
                        "user_transcript": f"[{self._utterance_ms / 1000:.1f} s of speech…]",
                        "event_id": self._utterance_id,
                    },
                }
            )
        if self._voiced_ms >= self.config.barge_in_ms and self.is_speaking:
            speech = self._speech
            if speech is not None and speech.event_id >= self._utterance_id:
                # The agent started this response during the utterance: the interruption
                # must carry a later id, or the client would keep playing it.
                self._utterance_id = next(self._event_ids)
            await self._interrupt_if_speaking(self._utterance_id)

    async def _on_speech_turn(self, spoken_ms: float, turn: int) -> None:
        text = f"[{spoken_ms / 1000:.1f} s of speech]"
        await self._emit(
            {
                "type": "user_transcript",
                "user_transcription_event": {"user_transcript": text, "event_id": turn},
            }
        )
        # A later interruption (a message typed meanwhile) would make the client drop a
        # reply with this id: answer with a new one then.
        reply_id = turn if max(self.interruptions, default=0) <= turn else next(self._event_ids)
        await self._speak_turn(
            f"I heard about {spoken_ms / 1000:.1f} seconds of speech. I'm a local demo agent "
            "without speech recognition, so please type what you need.",
            reply_id,
        )

    # ------------------------------------------------------------------ agent turns

    async def _interrupt_if_speaking(self, turn: int) -> None:
        """Stop speaking: ``interruption``, then ``agent_response_correction`` with the
        words the user heard of the interrupted response."""
        if not self.is_speaking:
            return
        speech = self._speech
        heard = speech.heard(time.monotonic()) if speech is not None else ""
        self._cancel_speaking()
        self.interruptions.append(turn)
        await self._emit({"type": "interruption", "interruption_event": {"event_id": turn}})
        if speech is None or heard == speech.text:
            return
        self.corrections[speech.event_id] = heard
        await self._emit(
            {
                "type": "agent_response_correction",
                "agent_response_correction_event": {
                    "original_agent_response": speech.text,
                    "corrected_agent_response": heard,
                    "event_id": speech.event_id,
                },
            }
        )

    def _cancel_speaking(self) -> None:
        if self._speaking is not None and not self._speaking.done():
            self._speaking.cancel()
        self._speaking = None
        self._speech = None
        self._speaking_until = 0.0

    async def _respond(self, text: str | None, turn: int, preface: str = "") -> None:
        async with self._turn_lock:
            plan = brain.plan_reply(text) if text is not None else brain.Plan("")
            say = await self._carry_out(plan, turn)
            say = f"{preface} {say}".strip()
            if say:
                await self._speak_turn(say, turn)
            if plan.end_call:
                await self._end_call(turn)

    async def _carry_out(self, plan: brain.Plan, turn: int) -> str:
        """Run the plan's tool, if any, where it runs; what the agent says then."""
        tool = plan.tool
        if tool is None:
            return plan.say
        if tool.kind is brain.ToolKind.WEBHOOK:
            call = await self._run_server_tool(tool, turn)
            return brain.reply_to_tool_result(tool, call.result, call.is_error)
        if tool.kind is brain.ToolKind.MCP:
            call = await self._run_mcp_tool(tool, turn)
            approved = call.approved if tool.needs_approval else not call.is_error
            return brain.reply_to_mcp_result(tool, approved, call.result or "")
        outcome = await self._call_tool(tool, turn)
        return brain.reply_to_tool_result(
            tool,
            None if outcome is None else str(outcome.result),
            bool(outcome and outcome.is_error),
        )

    async def _speak_turn(self, text: str, event_id: int) -> None:
        await self._start_speaking(text, event_id)
        task = self._speaking
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def _end_call(self, event_id: int) -> None:
        """The system tool ``end_call``: ``agent_tool_response`` (and the full payload)
        when enabled, then close with 1000, which ends the call either way. No
        ``agent_tool_request``: the contract describes it for client, webhook and MCP tools."""
        remaining = self._speaking_until - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
        call = AgentToolCall(f"end_call_{event_id}", "end_call", brain.ToolKind.SYSTEM.value, {})
        self.agent_tool_calls.append(call)
        call.result, call.state = json.dumps({"status": "success"}), "done"
        if await self._tool_response_events(call, event_id):
            await asyncio.sleep(0.2)  # the client sees the tool response, then the close
        await self.ws.close(1000, "Agent ended the conversation")

    async def _call_tool(self, tool: brain.ToolRequest, event_id: int) -> ToolResult | None:
        tool_call_id = f"call_{next(self._tool_ids)}"
        waiter: asyncio.Future[ToolResult | None] = asyncio.get_running_loop().create_future()
        self._tool_waiters[tool_call_id] = waiter
        await self._emit(
            {
                "type": "client_tool_call",
                "client_tool_call": {
                    "tool_name": tool.name,
                    "tool_call_id": tool_call_id,
                    "parameters": tool.parameters,
                    "event_id": event_id,
                },
            }
        )
        try:
            async with asyncio.timeout(self.config.tool_timeout_s):
                return await waiter
        except TimeoutError:
            return None
        finally:
            self._tool_waiters.pop(tool_call_id, None)

    def _new_agent_tool(self, tool: brain.ToolRequest) -> AgentToolCall:
        call = AgentToolCall(
            f"toolu_{next(self._tool_ids)}", tool.name, tool.kind.value, dict(tool.parameters)
        )
        self.agent_tool_calls.append(call)
        self._notify()
        return call

    async def _tool_request_event(self, call: AgentToolCall, event_id: int) -> None:
        """``agent_tool_request`` (opt-in): the agent starts one of its own tools."""
        await self._emit(
            {
                "type": "agent_tool_request",
                "agent_tool_request": {
                    "tool_name": call.tool_name,
                    "tool_call_id": call.tool_call_id,
                    "tool_type": call.tool_type,
                    "event_id": event_id,
                },
            }
        )

    async def _tool_response_events(
        self, call: AgentToolCall, event_id: int, *, is_called: bool = True
    ) -> bool:
        """``agent_tool_response`` and ``agent_tool_response_full_payload`` (both opt-in):
        the tool finished; the full payload carries its result as a string. Returns
        whether either was sent."""
        body: dict[str, Any] = {
            "tool_name": call.tool_name,
            "tool_call_id": call.tool_call_id,
            "tool_type": call.tool_type,
            "is_error": call.is_error,
            "is_called": is_called,
            "event_id": event_id,
        }
        sent = await self._emit({"type": "agent_tool_response", "agent_tool_response": body})
        sent_full = await self._emit(
            {
                "type": "agent_tool_response_full_payload",
                "agent_tool_response_full_payload": {
                    **body,
                    "is_blocked": False,
                    "full_tool_result": call.result or "",
                    "truncated": False,
                },
            }
        )
        self._notify()
        return sent or sent_full

    async def _run_server_tool(self, tool: brain.ToolRequest, event_id: int) -> AgentToolCall:
        """A server (webhook) tool: run here, its progress shown by the opt-in
        ``agent_tool_request`` / ``agent_tool_response`` events."""
        call = self._new_agent_tool(tool)
        await self._tool_request_event(call, event_id)
        await asyncio.sleep(self.config.tool_latency_s)
        call.result, call.is_error = brain.run_server_tool(tool)
        call.state = "done"
        await self._tool_response_events(call, event_id)
        return call

    async def _run_mcp_tool(self, tool: brain.ToolRequest, event_id: int) -> AgentToolCall:
        """An MCP tool of the pretend server: ``mcp_tool_call`` ``awaiting_approval``
        (when it needs approval) until ``mcp_tool_approval_result`` or the timeout, then
        ``loading`` and ``success``, or ``failure`` when declined or timed out."""
        call = self._new_agent_tool(tool)
        await self._tool_request_event(call, event_id)
        if tool.needs_approval:
            timeout = self.config.approval_timeout_s
            waiter: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
            self._approval_waiters[call.tool_call_id] = waiter
            try:
                await self._mcp_event(
                    call, "awaiting_approval", approval_timeout_secs=math.ceil(timeout)
                )
                async with asyncio.timeout(timeout):
                    call.approved = await waiter
            except TimeoutError:
                call.approved = None
            finally:
                self._approval_waiters.pop(call.tool_call_id, None)
            if not call.approved:
                call.is_error = True
                call.result = (
                    "The user declined the tool call."
                    if call.approved is False
                    else f"The approval timed out after {math.ceil(timeout)} s."
                )
                await self._mcp_event(call, "failure", error_message=call.result)
                await self._tool_response_events(call, event_id, is_called=False)
                return call
        await self._mcp_event(call, "loading")
        await asyncio.sleep(self.config.tool_latency_s)
        call.result = brain.mcp_result_text(tool)
        await self._mcp_event(call, "success", result=[{"type": "text", "text": call.result}])
        await self._tool_response_events(call, event_id)
        return call

    async def _mcp_event(self, call: AgentToolCall, state: str, **fields: Any) -> None:
        call.state = state
        self._notify()
        await self._emit(
            {
                "type": "mcp_tool_call",
                "mcp_tool_call": {
                    "service_id": brain.MCP_SERVICE_ID,
                    "tool_call_id": call.tool_call_id,
                    "tool_name": call.tool_name,
                    "tool_description": brain.MCP_TOOLS.get(call.tool_name),
                    "parameters": call.parameters,
                    "timestamp": _timestamp(),
                    "state": state,
                    **fields,
                },
            }
        )

    async def _start_speaking(self, text: str, event_id: int) -> None:
        self._cancel_speaking()
        self.agent_responses[event_id] = text
        self._speech = _Speech(event_id, text)
        self._speaking = asyncio.ensure_future(self._speak(self._speech))

    async def _speak(self, speech: _Speech) -> None:
        if self.text_only:
            await self._stream_text(speech)
            return
        text, event_id = speech.text, speech.event_id
        await self._emit(
            {
                "type": "agent_response",
                "agent_response_event": {"agent_response": text, "event_id": event_id},
            }
        )
        fmt = self.output_format
        samples = await synthesize(text, fmt.sample_rate, self.config.voice)
        data = await asyncio.to_thread(codec.encode, samples, fmt)
        chunk = max(fmt.bytes_per_sample, fmt.bytes_for_ms(self.config.chunk_ms))
        sends_audio = self._enabled("audio")
        speech.started_at = started = time.monotonic()
        speech.duration_s = fmt.duration_ms(len(data)) / 1000.0
        self._speaking_until = started + speech.duration_s
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            if sends_audio:
                if self.config.record:
                    self.sent_audio_event_ids.append(event_id)
                self.first_audio_sent_at.setdefault(event_id, time.monotonic())
            await self._emit(
                {
                    "type": "audio",
                    "audio_event": {
                        "audio_base_64": base64.b64encode(piece).decode("ascii"),
                        "event_id": event_id,
                    },
                }
            )
            await asyncio.sleep(fmt.duration_ms(len(piece)) / 1000.0 / self.config.send_speedup)

    async def _stream_text(self, speech: _Speech) -> None:
        """A text-only response: streamed as ``agent_chat_response_part`` start, deltas and
        stop when that (opt-in) event is enabled, then the final ``agent_response``."""
        text, event_id = speech.text, speech.event_id

        def part(kind: str, piece: str) -> dict[str, Any]:
            return {
                "type": "agent_chat_response_part",
                "text_response_part": {"text": piece, "type": kind, "event_id": event_id},
            }

        if self._enabled("agent_chat_response_part"):
            await self._emit(part("start", ""))
            words = text.split(" ")
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                await self._emit(part("delta", piece))
                speech.shown += len(piece)
                await asyncio.sleep(0.005)
            await self._emit(part("stop", ""))
        speech.shown = len(text)
        await self._emit(
            {
                "type": "agent_response",
                "agent_response_event": {"agent_response": text, "event_id": event_id},
            }
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class LocalAgentServer:
    """The local agent on ``host``:``port`` (port 0 picks a free one). Use ``async with``."""

    def __init__(
        self, config: AgentConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or AgentConfig()
        self.host = host
        self._requested_port = port
        self._server: Server | None = None
        self.sessions: list[AgentSession] = []
        self.signatures: set[str] = set()
        self.signed_url_requests = 0
        # The query of each signed-URL request (agent_id, environment, branch_id, …).
        self.signed_url_queries: list[dict[str, list[str]]] = []
        self.tokens: set[str] = set()  # WebRTC conversation tokens given out
        self.token_queries: list[dict[str, list[str]]] = []
        self._new_session = asyncio.Condition()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the local agent is not running")
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    @property
    def http_url(self) -> str:
        """The base URL to give clients as ``server_url``."""
        return f"http://{self.host}:{self.port}"

    def ws_url(self, agent_id: str = "demo") -> str:
        return f"ws://{self.host}:{self.port}{CONVERSATION_PATH}?agent_id={agent_id}"

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=2**22,
            compression=None,
        )
        logger.info("local agent listening on %s", self.http_url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LocalAgentServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def next_session(self, timeout: float = 5.0, after: int | None = None) -> AgentSession:
        """The session number ``after`` (default: the next one to open), once it opened."""
        index = len(self.sessions) if after is None else after
        async with asyncio.timeout(timeout), self._new_session:
            await self._new_session.wait_for(lambda: len(self.sessions) > index)
        return self.sessions[index]

    async def _handle(self, ws: ServerConnection) -> None:
        session = AgentSession(self, ws)
        self.sessions.append(session)
        async with self._new_session:
            self._new_session.notify_all()
        await session.run()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path == SIGNED_URL_PATH:
            return self._signed_url(connection, request, parse_qs(parts.query))
        if parts.path == TOKEN_PATH:
            return self._token(connection, request, parse_qs(parts.query))
        if parts.path == CONVERSATION_PATH:
            if not parse_qs(parts.query).get("agent_id"):
                return _json(
                    connection,
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    _detail("missing_agent_id", "agent_id is required"),
                )
            return None
        return _json(connection, HTTPStatus.NOT_FOUND, _detail("not_found", "Not found"))

    def _signed_url(
        self, connection: ServerConnection, request: Request, query: dict[str, list[str]]
    ) -> Response:
        self.signed_url_requests += 1
        self.signed_url_queries.append(query)
        refused = self._refused(connection, request, query)
        if refused is not None:
            return refused
        agent_id = query["agent_id"][0]
        signature = secrets.token_urlsafe(16)
        self.signatures.add(signature)
        url = f"{self.ws_url(agent_id)}&conversation_signature={signature}"
        return _json(connection, HTTPStatus.OK, {"signed_url": url})

    def _refused(
        self, connection: ServerConnection, request: Request, query: dict[str, list[str]]
    ) -> Response | None:
        """The REST API's answer to a request without the agent's API key (when it has
        one) or without an agent; ``None`` when the request may go on."""
        key = request.headers.get("xi-api-key")
        if self.config.api_key is not None and key != self.config.api_key:
            return _json(
                connection, HTTPStatus.UNAUTHORIZED, _detail("invalid_api_key", "Invalid API key")
            )
        if not (query.get("agent_id") or [""])[0]:
            return _json(
                connection,
                HTTPStatus.UNPROCESSABLE_ENTITY,
                _detail("missing_agent_id", "agent_id is required"),
            )
        return None

    def _token(
        self, connection: ServerConnection, request: Request, query: dict[str, list[str]]
    ) -> Response:
        """A WebRTC conversation token, as ``/v1/convai/conversation/token`` gives: the
        API key is checked only when the agent has one (a public agent needs none)."""
        self.token_queries.append(query)
        refused = self._refused(connection, request, query)
        if refused is not None:
            return refused
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return _json(connection, HTTPStatus.OK, {"token": token})


def _detail(status: str, message: str) -> dict[str, Any]:
    return {"detail": {"status": status, "message": message}}


def _json(connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(body))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


_INVALID = "Invalid message received"


def _close_reason(text: str) -> str:
    """``text`` cut to the 123 bytes a close frame's reason can hold."""
    return text.encode("utf-8")[:123].decode("utf-8", errors="ignore")


def _timestamp() -> str:
    """Now, in ISO 8601 UTC (the contract's ``date-time``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
