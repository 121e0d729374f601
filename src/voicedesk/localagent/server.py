"""A local agent server on loopback that speaks the ElevenLabs conversation protocol.

It follows ``convai-protocol.md`` as the real service does, not as our client
happens to behave: it checks what clients send (a non-string tool result closes
with 1008, as the service does) and can be scripted by tests (send any frame,
close with any code, drop the TCP connection, stall).

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
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voicedesk.audio import codec
from voicedesk.localagent import brain
from voicedesk.localagent.voice import VoiceKind, synthesize
from voicedesk.protocol.formats import AudioFormat, parse_audio_format

logger = logging.getLogger(__name__)

CONVERSATION_PATH = "/v1/convai/conversation"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"


@dataclass(slots=True)
class AgentConfig:
    """How the local agent behaves. Times in seconds unless named ``_ms``."""

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
    max_duration_s: float | None = None


@dataclass(slots=True)
class ToolResult:
    tool_call_id: str
    result: Any
    is_error: Any


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
        self.output_format: AudioFormat = parse_audio_format(self.config.agent_output_audio_format)
        self.input_format: AudioFormat = parse_audio_format(self.config.user_input_audio_format)
        # What the client sent, in order (audio chunks are summed up, not listed).
        self.received: list[dict[str, Any]] = []
        self.user_messages: list[str] = []
        self.contextual_updates: list[str] = []
        self.user_activity_count = 0
        self.feedback: list[tuple[str, int]] = []
        self.tool_results: dict[str, ToolResult] = {}
        self.pongs: dict[int, float] = {}
        self.audio_chunks = 0
        self.audio_in = bytearray()  # raw bytes, in the user input format
        # (arrival time.monotonic(), len(audio_in) after the chunk): for latency benchmarks
        self.audio_arrivals: list[tuple[float, int]] = []
        self.agent_responses: dict[int, str] = {}
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
        self._speaking_until = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tool_waiters: dict[str, asyncio.Future[ToolResult | None]] = {}
        self._ping_sent: dict[int, float] = {}
        self._last_rtt_ms: int | None = None
        self._voiced_ms = 0.0
        self._silence_ms = 0.0
        self._utterance_ms = 0.0
        self._since_vad_ms = 0.0
        self._stalled = False
        self._turn_lock = asyncio.Lock()

    # ------------------------------------------------------------------ scripting API

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Send any frame: a dict as JSON text, a str as text, bytes as a binary frame."""
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
        """Stop speaking and send ``interruption``, as when the user talks over the agent.
        Returns the interruption's event id (``None`` when the agent was not speaking)."""
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

    # ------------------------------------------------------------------ conversation

    async def run(self) -> None:
        try:
            if not await self._authorize():
                return
            if not await self._receive_initiation():
                return
            if self.config.send_metadata:
                await self._send_metadata()
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
            for waiter in self._tool_waiters.values():
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
        initiation = self.initiation or {}
        overrides = initiation.get("conversation_config_override") or {}
        part = overrides.get(section) or {}
        return part.get(key) if isinstance(part, dict) else None

    async def _receive_initiation(self) -> bool:
        try:
            async with asyncio.timeout(self.config.initiation_timeout_s):
                frame = await self.ws.recv()
        except TimeoutError:
            return True  # the service goes on with the agent's defaults
        try:
            msg = json.loads(frame)
        except (TypeError, ValueError):
            await self.ws.close(1008, "Invalid message received")
            return False
        if not isinstance(msg, dict) or msg.get("type") != "conversation_initiation_client_data":
            await self._on_frame(frame)
            return True
        self.initiation = msg
        self._record(msg)
        variables = msg.get("dynamic_variables") or {}
        if not isinstance(variables, dict):
            await self.ws.close(1008, "Invalid message received: dynamic_variables")
            return False
        self.dynamic_variables = variables
        overrides = msg.get("conversation_config_override") or {}
        conversation = overrides.get("conversation") or {}
        self.text_only = bool(conversation.get("text_only", False))
        has_overrides = any(overrides.get(k) for k in ("agent", "tts"))
        if has_overrides and not self.config.allow_overrides:
            await self._error_and_close(
                "Override for field 'first_message' is not allowed by config.", "override_error"
            )
            return False
        missing = brain.required_variables(self._first_message()) - set(variables)
        if missing:
            await self._error_and_close(
                f"Missing required dynamic variables in first message: {sorted(missing)}",
                "missing_dynamic_variable",
            )
            return False
        return True

    async def _error_and_close(self, message: str, error_type: str, code: int = 1008) -> None:
        await self.send(
            {
                "type": "error",
                "error_event": {"code": code, "message": message, "error_type": error_type},
            }
        )
        await self.ws.close(code, message[:120])

    async def _send_metadata(self) -> None:
        await self.send(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": self.conversation_id,
                    "agent_output_audio_format": self.output_format.name,
                    "user_input_audio_format": self.input_format.name,
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
            await self.send(
                {"type": "ping", "ping_event": {"event_id": event_id, "ping_ms": self._last_rtt_ms}}
            )

    async def _duration_limit(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._error_and_close(
            "Conversation has exceeded maximum duration", "max_duration_exceeded", code=1011
        )

    # ------------------------------------------------------------------ client messages

    async def _on_frame(self, frame: str | bytes) -> None:
        if self._stalled:
            return
        try:
            msg = json.loads(frame)
        except (TypeError, ValueError):
            await self.ws.close(1008, "Invalid message received")
            return
        if not isinstance(msg, dict):
            await self.ws.close(1008, "Invalid message received")
            return
        if "user_audio_chunk" in msg:
            await self._on_audio(msg["user_audio_chunk"])
            return
        self._record(msg)
        handler = {
            "pong": self._on_pong,
            "client_tool_result": self._on_tool_result,
            "user_message": self._on_user_message,
            "contextual_update": self._on_contextual_update,
            "user_activity": self._on_user_activity,
            "feedback": self._on_feedback,
            "conversation_initiation_client_data": self._on_late_initiation,
        }.get(str(msg.get("type")))
        if handler is None:
            await self.ws.close(1008, f"Invalid message received: unknown type {msg.get('type')!r}")
            return
        await handler(msg)

    def _record(self, msg: dict[str, Any]) -> None:
        self.received.append(msg)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    async def _on_late_initiation(self, msg: dict[str, Any]) -> None:
        await self.ws.close(1008, "Invalid message received: conversation already initiated")

    async def _on_pong(self, msg: dict[str, Any]) -> None:
        event_id = msg.get("event_id")
        sent = self._ping_sent.pop(event_id, None) if isinstance(event_id, int) else None
        if sent is not None:
            self._last_rtt_ms = round(1000 * (time.monotonic() - sent))
            self.pongs[event_id] = self._last_rtt_ms  # type: ignore[index]

    async def _on_tool_result(self, msg: dict[str, Any]) -> None:
        result = msg.get("result")
        if not isinstance(result, str):
            # As the service: a non-string result is a contract violation.
            await self.ws.close(
                1008, "Invalid message received: client tool result must be a string"
            )
            return
        tool_call_id = str(msg.get("tool_call_id"))
        outcome = ToolResult(tool_call_id, result, msg.get("is_error", False))
        self.tool_results[tool_call_id] = outcome
        waiter = self._tool_waiters.pop(tool_call_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    async def _on_user_message(self, msg: dict[str, Any]) -> None:
        text = str(msg.get("text", ""))
        self.user_messages.append(text)
        turn = next(self._event_ids)
        await self._interrupt_if_speaking(turn)
        self._spawn(self._respond(text, turn))

    async def _on_contextual_update(self, msg: dict[str, Any]) -> None:
        # Context never interrupts the agent (reference, client -> server).
        self.contextual_updates.append(str(msg.get("text", "")))

    async def _on_user_activity(self, msg: dict[str, Any]) -> None:
        self.user_activity_count += 1

    async def _on_feedback(self, msg: dict[str, Any]) -> None:
        score, event_id = msg.get("score"), msg.get("event_id")
        if score not in ("like", "dislike") or not isinstance(event_id, int):
            await self.ws.close(1008, "Invalid message received: feedback")
            return
        self.feedback.append((score, event_id))

    async def _on_audio(self, data: Any) -> None:
        try:
            raw = base64.b64decode(data, validate=True)
        except (TypeError, ValueError):
            await self.ws.close(1008, "Invalid message received: user_audio_chunk")
            return
        self.audio_chunks += 1
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
            await self.send(
                {"type": "vad_score", "vad_score_event": {"vad_score": round(score, 3)}}
            )
        if voiced:
            self._voiced_ms += chunk_ms
            self._utterance_ms += chunk_ms
            self._silence_ms = 0.0
            if self._voiced_ms >= self.config.barge_in_ms and self.is_speaking:
                await self._interrupt_if_speaking(next(self._event_ids))
            return
        self._voiced_ms = 0.0
        if self._utterance_ms > 0:
            self._silence_ms += chunk_ms
            if self._silence_ms >= self.config.end_of_turn_ms:
                spoken_ms, self._utterance_ms = self._utterance_ms, 0.0
                if spoken_ms >= 150:
                    self._spawn(self._on_speech_turn(spoken_ms))

    async def _on_speech_turn(self, spoken_ms: float) -> None:
        turn = next(self._event_ids)
        text = f"[{spoken_ms / 1000:.1f} s of speech]"
        await self.send(
            {
                "type": "user_transcript",
                "user_transcription_event": {"user_transcript": text, "event_id": turn},
            }
        )
        await self._speak_turn(
            f"I heard about {spoken_ms / 1000:.1f} seconds of speech. I'm a local demo agent "
            "without speech recognition, so please type what you need.",
            turn,
        )

    # ------------------------------------------------------------------ agent turns

    async def _interrupt_if_speaking(self, turn: int) -> None:
        if not self.is_speaking:
            return
        self._cancel_speaking()
        self.interruptions.append(turn)
        await self.send({"type": "interruption", "interruption_event": {"event_id": turn}})

    def _cancel_speaking(self) -> None:
        if self._speaking is not None and not self._speaking.done():
            self._speaking.cancel()
        self._speaking = None
        self._speaking_until = 0.0

    async def _respond(self, text: str, turn: int) -> None:
        async with self._turn_lock:
            plan = brain.plan_reply(text)
            if plan.tool is not None:
                outcome = await self._call_tool(plan.tool, turn)
                say = brain.reply_to_tool_result(
                    plan.tool,
                    None if outcome is None else str(outcome.result),
                    bool(outcome and outcome.is_error),
                )
            else:
                say = plan.say
            if say:
                await self._speak_turn(say, turn)
            if plan.end_call:
                await self._end_call(turn)

    async def _speak_turn(self, text: str, event_id: int) -> None:
        await self._start_speaking(text, event_id)
        task = self._speaking
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def _end_call(self, event_id: int) -> None:
        remaining = self._speaking_until - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
        await self.send(
            {
                "type": "agent_tool_response",
                "agent_tool_response": {
                    "tool_name": "end_call",
                    "tool_call_id": f"end_call_{event_id}",
                    "tool_type": "system",
                    "is_error": False,
                    "event_id": event_id,
                },
            }
        )
        await asyncio.sleep(0.2)
        await self.ws.close(1000, "Agent ended the conversation")

    async def _call_tool(self, tool: brain.ToolRequest, event_id: int) -> ToolResult | None:
        tool_call_id = f"call_{next(self._tool_ids)}"
        waiter: asyncio.Future[ToolResult | None] = asyncio.get_running_loop().create_future()
        self._tool_waiters[tool_call_id] = waiter
        await self.send(
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

    async def _start_speaking(self, text: str, event_id: int) -> None:
        self._cancel_speaking()
        self.agent_responses[event_id] = text
        self._speaking = asyncio.ensure_future(self._speak(text, event_id))

    async def _speak(self, text: str, event_id: int) -> None:
        if self.text_only:
            await self._stream_text(text, event_id)
            return
        await self.send(
            {
                "type": "agent_response",
                "agent_response_event": {"agent_response": text, "event_id": event_id},
            }
        )
        fmt = self.output_format
        samples = await synthesize(text, fmt.sample_rate, self.config.voice)
        data = await asyncio.to_thread(codec.encode, samples, fmt)
        chunk = max(fmt.bytes_per_sample, fmt.bytes_for_ms(self.config.chunk_ms))
        started = time.monotonic()
        self._speaking_until = started + fmt.duration_ms(len(data)) / 1000.0
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            self.sent_audio_event_ids.append(event_id)
            frame = json.dumps(
                {
                    "type": "audio",
                    "audio_event": {
                        "audio_base_64": base64.b64encode(piece).decode("ascii"),
                        "event_id": event_id,
                    },
                }
            )
            self.first_audio_sent_at.setdefault(event_id, time.monotonic())
            await self.send(frame)
            await asyncio.sleep(fmt.duration_ms(len(piece)) / 1000.0 / self.config.send_speedup)

    async def _stream_text(self, text: str, event_id: int) -> None:
        def part(kind: str, piece: str) -> dict[str, Any]:
            return {
                "type": "agent_chat_response_part",
                "text_response_part": {"text": piece, "type": kind, "event_id": event_id},
            }

        await self.send(part("start", ""))
        words = text.split(" ")
        for i, word in enumerate(words):
            await self.send(part("delta", word if i == 0 else " " + word))
            await asyncio.sleep(0.005)
        await self.send(part("stop", ""))
        await self.send(
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
        key = request.headers.get("xi-api-key")
        if self.config.api_key is not None and key != self.config.api_key:
            return _json(
                connection, HTTPStatus.UNAUTHORIZED, _detail("invalid_api_key", "Invalid API key")
            )
        agent_id = (query.get("agent_id") or [""])[0]
        if not agent_id:
            return _json(
                connection,
                HTTPStatus.UNPROCESSABLE_ENTITY,
                _detail("missing_agent_id", "agent_id is required"),
            )
        signature = secrets.token_urlsafe(16)
        self.signatures.add(signature)
        url = f"{self.ws_url(agent_id)}&conversation_signature={signature}"
        return _json(connection, HTTPStatus.OK, {"signed_url": url})


def _detail(status: str, message: str) -> dict[str, Any]:
    return {"detail": {"status": status, "message": message}}


def _json(connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(body))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response
