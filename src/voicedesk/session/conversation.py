"""An asyncio conversation with an agent, mirroring ``useConversation``.

Everything here runs on one event loop thread (in the app, Qt's, through qasync).
The protocol rules live in :class:`~voicedesk.protocol.ConversationCore`; this
class does the I/O around it: auth, the connection (a :class:`Transport`), the audio
port and client tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from voicedesk import __version__
from voicedesk.audio.port import AudioPort, AudioStartError
from voicedesk.concurrency import run_in_daemon_thread
from voicedesk.protocol.catalog import DEFAULT_CLIENT_EVENTS
from voicedesk.protocol.errors import DisconnectDetails
from voicedesk.protocol.events import (
    AgentAudio,
    AgentResponse,
    AgentTyping,
    ClientToolCall,
    ConfigOverrides,
    ContextUsage,
    FeedbackScore,
    InitiationClientData,
    Interruption,
    JsonScalar,
    McpConnectionStatus,
    McpToolCall,
)
from voicedesk.protocol.machine import (
    CloseRequested,
    ConversationCore,
    Disconnected,
    ErrorReported,
    LatencyMeasured,
    McpApprovalClosed,
    McpApprovalRequested,
    MetadataReceived,
    Mode,
    Status,
)
from voicedesk.session.auth import AuthError, fetch_conversation_token, fetch_signed_url
from voicedesk.session.endpoints import (
    DEFAULT_SERVER_URL,
    EndpointError,
    checked_signed_url,
    conversation_url,
    is_loopback_host,
    livekit_url,
    normalize_server_url,
    platform_name,
)
from voicedesk.session.events import (
    AgentTypingChanged,
    AudioNotice,
    AudioUnavailable,
    Notice,
    SessionEvent,
    ToolCallFinished,
    ToolCallStarted,
    TransportNotice,
    UserTextSent,
)
from voicedesk.session.livekit import LiveKitTransport, MediaBridge, Room
from voicedesk.session.transport import (
    StartFailure,
    Transport,
    TransportClosed,
    TransportError,
    TransportMedia,
    WebSocketTransport,
)
from voicedesk.tools.permissions import REFUSED_NO_ANSWER
from voicedesk.tools.registry import (
    TOOL_FAILED_PREFIX,
    ToolOutcome,
    ToolRegistry,
    stringify_result,
)

logger = logging.getLogger(__name__)

SOURCE_NAME = "voicedesk"
Listener = Callable[[SessionEvent], None]
USER_ACTIVITY_INTERVAL_S = 0.3  # user_activity at most ~3 times a second while typing
APPROVAL_MARGIN_S = 1.0  # answer an MCP approval this long before the server gives up
#: The contract's default ``approval_timeout_secs``, for an MCP call that gives none.
DEFAULT_APPROVAL_TIMEOUT_S = 300.0
AGENT_TYPING_TIMEOUT_S = 30.0  # "typing…" without a duration clears after this long

#: Asks the user whether an MCP tool call may run; ``True`` approves. It is cancelled
#: when the question is no longer wanted; no answer in time counts as a denial.
Approver = Callable[[McpToolCall], Awaitable[bool]]
#: Decides whether a client tool call may run, given the seconds the tool has: ``None``
#: lets it run, a sentence refuses it (the agent gets it as the tool's error). Still
#: deciding when the tool's time is up: refused.
ToolGate = Callable[[ClientToolCall, float], Awaitable[str | None]]


@dataclass(slots=True)
class ConversationOptions:
    """What a conversation connects to and how. Times in seconds.

    Exactly one of ``agent_id`` (public agent, or private with ``api_key``) and
    ``signed_url`` is needed. ``environment`` and ``branch_id`` pick the agent's
    deployment. The overrides (``prompt`` … ``client_events``) are the contract's
    ``conversation_config_override``; the agent must allow each one. ``client_events``
    are asked for on top of the contract's defaults, which the client needs to work
    (the metadata, pings, audio, transcripts), so asking for more never takes those away.
    """

    agent_id: str | None = None
    api_key: str | None = field(default=None, repr=False)
    signed_url: str | None = field(default=None, repr=False)
    server_url: str = DEFAULT_SERVER_URL
    dynamic_variables: dict[str, JsonScalar] = field(default_factory=dict)
    user_id: str | None = None
    environment: str | None = None
    branch_id: str | None = None
    prompt: str | None = None
    llm: str | None = None
    first_message: str | None = None
    language: str | None = None
    voice_id: str | None = None
    tts_speed: float | None = None
    tts_stability: float | None = None
    tts_similarity_boost: float | None = None
    asr_keywords: tuple[str, ...] | None = None
    client_events: tuple[str, ...] | None = None
    custom_llm_extra_body: dict[str, Any] | None = None
    text_only: bool = False
    transport: str = "websocket"
    livekit_url: str | None = None
    connect_timeout_s: float = 10.0
    metadata_timeout_s: float = 10.0
    keepalive_interval_s: float | None = 20.0
    keepalive_timeout_s: float | None = 20.0
    close_timeout_s: float = 2.0


class Conversation:
    """One conversation at a time with an agent; ``start()`` again after it ends.

    The public surface mirrors the React ``useConversation`` hook: ``start()``,
    ``end()``, ``send_user_message()``, ``send_contextual_update()``,
    ``send_user_activity()``, ``send_feedback()``, ``set_mic_muted()``,
    ``set_volume()``; ``status``, ``mode``, ``is_speaking``, ``can_send_feedback``,
    ``conversation_id``. Events go to listeners added with :meth:`add_listener`,
    called on the event loop thread; a listener that raises is logged and skipped.
    """

    def __init__(
        self,
        options: ConversationOptions,
        *,
        tools: ToolRegistry | None = None,
        audio: AudioPort | None = None,
        approver: Approver | None = None,
        webrtc_room: Callable[[], tuple[Room, Callable[[Room], MediaBridge]]] | None = None,
        tool_gate: ToolGate | None = None,
    ) -> None:
        """``webrtc_room`` builds the LiveKit room and its media for a WebRTC
        conversation (default: ``livekit.rtc``'s; tests give their own)."""
        self.options = options
        self._webrtc_room = webrtc_room
        self.tool_gate = tool_gate
        self.tools = tools if tools is not None else ToolRegistry()
        self.approver = approver
        self._audio = audio
        self._approvals: dict[str, asyncio.Task[None]] = {}
        self._agent_typing = False
        self._typing_timer: asyncio.TimerHandle | None = None
        self._core = ConversationCore()
        self._listeners: list[Listener] = []
        self._transport: Transport | None = None
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._metadata_event = asyncio.Event()
        self._ended = asyncio.Event()
        self._ended.set()
        self._audio_running = False
        # Agent audio that arrives while the devices are still opening (the greeting
        # follows the metadata at once) waits here instead of being lost.
        self._audio_backlog: list[bytes] = []
        self._text_only = options.text_only or audio is None
        self._muted = False
        self._volume = 1.0
        self._latency_ms: int | None = None
        self._last_details: DisconnectDetails | None = None
        self._closing = False
        self._last_activity = -USER_ACTIVITY_INTERVAL_S

    # ------------------------------------------------------------------ observation

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Subscribe to events; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def status(self) -> Status:
        return self._core.status

    @property
    def mode(self) -> Mode:
        return self._core.mode

    @property
    def is_speaking(self) -> bool:
        return self._core.is_speaking

    @property
    def can_send_feedback(self) -> bool:
        return self._core.can_send_feedback

    @property
    def feedback_rating(self) -> FeedbackScore | None:
        """The latest agent event's current rating (``None``: not rated)."""
        return self._core.feedback_rating

    @property
    def pending_approvals(self) -> tuple[McpToolCall, ...]:
        """MCP tool calls waiting for the user's approval."""
        return self._core.pending_approvals

    @property
    def is_agent_typing(self) -> bool:
        """An external agent is typing (``agent_typing``), in a text conversation."""
        return self._agent_typing

    @property
    def conversation_id(self) -> str | None:
        return self._core.conversation_id

    @property
    def is_text_only(self) -> bool:
        return self._text_only

    @property
    def is_mic_muted(self) -> bool:
        return self._muted

    @property
    def volume(self) -> float:
        return self._volume

    @property
    def latency_ms(self) -> int | None:
        """The latest round-trip latency reported by the server's pings, in ms."""
        return self._latency_ms

    @property
    def last_disconnect(self) -> DisconnectDetails | None:
        return self._last_details

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> bool:
        """Connect and wait until connected (``True``) or failed (``False``).

        Failures are not raised: they end in ``disconnected`` with details, which
        listeners get as a :class:`~voicedesk.protocol.machine.Disconnected` event.
        """
        self._text_only = self.options.text_only or self._audio is None
        self._core.start(self._initiation())
        self._ended.clear()
        self._metadata_event.clear()
        self._closing = False
        self._last_activity = -USER_ACTIVITY_INTERVAL_S
        self._outbox = asyncio.Queue()
        self._pump()
        try:
            transport = await self._new_transport()
            if self._end_requested():
                self._finish_without_socket()
                return False
            await transport.open()
            self._transport = transport
        except (EndpointError, AuthError, TransportError) as exc:
            self._core.start_failed(
                str(exc), transient=isinstance(exc, StartFailure) and exc.transient
            )
            self._pump()
            return False
        if self._end_requested():  # end() while connecting
            self._spawn(self._close_socket(1000, "User ended conversation"))
            await self._run_reader_until_closed()
            return False
        self._core.connection_opened()
        media = transport.media
        if media is not None:
            media.set_audio_handler(self._play_agent_audio)
            if not await self._send_initiation(transport):
                return False
            # The room stands for the metadata (which may come too, and then wins).
            self._core.room_joined(media.conversation_id, media.audio_format)
        self._spawn(self._writer())
        reader = self._spawn(self._reader())
        self._pump()
        if not await self._wait_for_metadata(reader):
            await self.wait_disconnected()
            return False
        await self._start_audio()
        self._core.audio_ready()
        self._pump()
        return self._core.status is Status.CONNECTED

    async def end(self) -> None:
        """End the conversation (client closes with 1000) and wait until disconnected.

        Always returns: a close handshake that has not finished ``close_timeout_s``
        (plus a second) later is cut, and the conversation ends without it."""
        if self._core.end():
            self._pump()
        if self._ended.is_set():
            return
        try:
            async with asyncio.timeout(self.options.close_timeout_s + 1.0):
                await self._ended.wait()
        except TimeoutError:
            logger.warning("the connection did not close in time; cutting it")
            await self._cut_connection()

    async def _cut_connection(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._ended.wait()
                return
        await self._finish(None, None)

    async def wait_disconnected(self) -> DisconnectDetails | None:
        """Wait until the conversation is over; its details (``None`` if none ran)."""
        await self._ended.wait()
        return self._last_details

    # ------------------------------------------------------------------ sending

    def send_user_message(self, text: str) -> bool:
        """Send a typed message; ``False`` (and nothing sent) when not connected."""
        return self._sent_text(self._core.send_user_message(text), text, "message")

    def send_contextual_update(self, text: str, context_id: str | None = None) -> bool:
        return self._sent_text(self._core.send_contextual_update(text, context_id), text, "context")

    def send_multimodal_message(self, text: str | None, file_id: str | None) -> bool:
        """Text with a file uploaded beforehand through the REST API (``file_id``)."""
        sent = self._core.send_multimodal_message(text, file_id)
        return self._sent_text(sent, text or "", "multimodal")

    def notify(self, message: str) -> None:
        """Tell the listeners something the user should know (a :class:`Notice`)."""
        self._emit(Notice(message))

    def _sent_text(self, queued: bool, text: str, kind: str) -> bool:
        if self._send(queued):
            self._emit(UserTextSent(text, kind))
        return queued

    def send_user_activity(self) -> bool:
        return self._send(self._core.send_user_activity())

    def user_typing(self) -> bool:
        """The user typed a key: ``user_activity`` at most every
        :data:`USER_ACTIVITY_INTERVAL_S` (the tutorial sends one per keystroke; a few a
        second tell the agent the same). ``True`` when one was sent."""
        now = time.monotonic()
        if now - self._last_activity < USER_ACTIVITY_INTERVAL_S:
            return False
        if not self.send_user_activity():
            return False
        self._last_activity = now
        return True

    def send_feedback(self, like: bool) -> bool:
        """Rate the latest agent event; the rating it already has clears it. ``False``
        when there is nothing to rate."""
        return self._send(self._core.send_feedback(like))

    def clear_feedback(self) -> bool:
        return self._send(self._core.clear_feedback())

    def approve_mcp_tool(self, tool_call_id: str, approved: bool) -> bool:
        """Answer an MCP tool call awaiting approval; ``False`` when it no longer waits.
        The question is withdrawn (its approver cancelled) by the core's
        :class:`McpApprovalClosed`, handled as the outputs are moved."""
        sent = self._core.send_mcp_approval(tool_call_id, approved)
        self._pump()
        return sent

    def set_mic_muted(self, muted: bool) -> None:
        self._muted = muted
        if self._audio is not None and self._audio_running:
            self._audio.set_muted(muted)

    def set_volume(self, volume: float) -> None:
        self._volume = min(1.0, max(0.0, volume))
        if self._audio is not None and self._audio_running:
            self._audio.set_volume(self._volume)

    # ------------------------------------------------------------------ AudioSink

    def on_mic_audio(self, audio: bytes) -> None:
        media = self._media()
        if media is not None:
            media.send_audio(audio)  # a track, not user_audio_chunk messages
            return
        self._send(self._core.send_user_audio(audio))

    def on_playback_started(self) -> None:
        self._core.playback_started()
        self._pump()

    def on_playback_stopped(self) -> None:
        self._core.playback_stopped()
        self._pump()

    def on_audio_failure(self, message: str) -> None:
        self._audio_running = False
        self._text_only = True
        self._core.playback_stopped()
        self._emit(AudioUnavailable(message))
        self._pump()

    def on_audio_notice(self, message: str) -> None:
        self._emit(AudioNotice(message))

    # ------------------------------------------------------------------ internals

    def _initiation(self) -> InitiationClientData:
        o = self.options
        variables: dict[str, JsonScalar] = {"platform": platform_name()}
        variables.update(o.dynamic_variables)
        return InitiationClientData(
            dynamic_variables=variables,
            overrides=ConfigOverrides(
                prompt=o.prompt,
                llm=o.llm,
                first_message=o.first_message,
                language=o.language,
                voice_id=o.voice_id,
                tts_speed=o.tts_speed,
                tts_stability=o.tts_stability,
                tts_similarity_boost=o.tts_similarity_boost,
                asr_keywords=o.asr_keywords,
                text_only=True if self._text_only else None,
                client_events=_with_default_events(o.client_events),
            ),
            user_id=o.user_id,
            source=SOURCE_NAME,
            version=__version__,
            custom_llm_extra_body=o.custom_llm_extra_body,
        )

    async def _new_transport(self) -> Transport:
        o = self.options
        if o.transport == "webrtc":
            local = is_loopback_host(urlsplit(normalize_server_url(o.server_url)).hostname)
            if self._text_only or o.signed_url or (local and not o.livekit_url):
                why = (
                    "a text-only conversation"
                    if self._text_only
                    else "a signed URL"
                    if o.signed_url
                    else "the local agent (it has no LiveKit server)"
                )
                self._emit(
                    TransportNotice(
                        f"WebRTC carries voice with a conversation token; {why} uses the websocket."
                    )
                )
            else:
                return await self._livekit()
        return self._websocket(await self._resolve_url())

    async def _livekit(self) -> LiveKitTransport:
        o = self.options
        if not o.agent_id:
            raise EndpointError("No agent is set. Give an agent ID (--agent-id) or use --demo.")
        url = livekit_url(o.server_url, o.livekit_url)
        token = await fetch_conversation_token(
            normalize_server_url(o.server_url),
            o.agent_id,
            o.api_key,
            o.connect_timeout_s,
            source=SOURCE_NAME,
            version=__version__,
            environment=o.environment,
            branch_id=o.branch_id,
        )
        room, media = self._webrtc_room() if self._webrtc_room is not None else (None, None)
        return LiveKitTransport(
            url, token, connect_timeout_s=o.connect_timeout_s, room=room, media=media
        )

    async def _send_initiation(self, transport: Transport) -> bool:
        """Over WebRTC the initiation goes first and must arrive: a room nobody started
        a conversation for would stay silent (as ``@elevenlabs/client``)."""
        for frame in self._core.data_to_send():
            try:
                await transport.send(frame)
            except TransportClosed:
                self._core.start_failed(
                    "The conversation could not be started in its WebRTC room. Try again, "
                    "or talk over the websocket (--transport websocket)."
                )
                await self._close_socket(1000, "Client error")
                self._transport = None
                self._pump()
                return False
        return True

    def _media(self) -> TransportMedia | None:
        """The audio the transport carries itself (WebRTC's tracks); ``None`` when the
        voice travels in the messages (the websocket)."""
        return self._transport.media if self._transport is not None else None

    def _play_agent_audio(self, pcm: bytes) -> None:
        """The agent's voice from the transport's own audio (WebRTC's track)."""
        if self._audio is not None and self._audio_running:
            self._audio.play(pcm)
        elif not self._text_only and self._core.status is Status.CONNECTING:
            self._audio_backlog.append(pcm)

    async def _resolve_url(self) -> str:
        o = self.options
        if o.signed_url:
            return checked_signed_url(o.signed_url, SOURCE_NAME, __version__)
        if not o.agent_id:
            raise EndpointError("No agent is set. Give an agent ID (--agent-id) or use --demo.")
        server_url = normalize_server_url(o.server_url)
        if o.api_key:
            signed = await fetch_signed_url(
                server_url,
                o.agent_id,
                o.api_key,
                o.connect_timeout_s,
                on_retry=self.notify,
                environment=o.environment,
                branch_id=o.branch_id,
            )
            return checked_signed_url(signed, SOURCE_NAME, __version__)
        return conversation_url(
            server_url,
            o.agent_id,
            SOURCE_NAME,
            __version__,
            environment=o.environment,
            branch_id=o.branch_id,
        )

    def _websocket(self, url: str) -> WebSocketTransport:
        o = self.options
        return WebSocketTransport(
            url,
            user_agent=f"{SOURCE_NAME}/{__version__}",
            connect_timeout_s=o.connect_timeout_s,
            close_timeout_s=o.close_timeout_s,
            keepalive_interval_s=o.keepalive_interval_s,
            keepalive_timeout_s=o.keepalive_timeout_s,
        )

    def _end_requested(self) -> bool:
        return self._core.status is Status.DISCONNECTING

    async def _wait_for_metadata(self, reader: asyncio.Task[None]) -> bool:
        waiter = asyncio.ensure_future(self._metadata_event.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, reader},
                timeout=self.options.metadata_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
        if self._metadata_event.is_set():
            return self._core.status in (Status.CONNECTING, Status.CONNECTED)
        if not done:
            self._core.fail(
                f"The agent did not start the conversation within "
                f"{self.options.metadata_timeout_s:g} s. Try again in a moment.",
                "metadata_timeout",
            )
            self._pump()
        return False

    async def _start_audio(self) -> None:
        output_format = self._core.agent_output_format
        input_format = self._core.user_input_format
        if self._text_only or self._audio is None or output_format is None or input_format is None:
            return
        try:
            await self._audio.start(
                input_format=input_format, output_format=output_format, sink=self
            )
        except AudioStartError as exc:
            self._text_only = True
            self._audio_backlog.clear()
            self._emit(AudioUnavailable(f"{exc} The conversation goes on as text."))
            return
        self._audio_running = True
        self._audio.set_muted(self._muted)
        self._audio.set_volume(self._volume)
        backlog, self._audio_backlog = self._audio_backlog, []
        for chunk in backlog:
            self._audio.play(chunk)

    async def _stop_audio(self) -> None:
        if self._audio is not None and self._audio_running:
            self._audio_running = False
            try:
                await self._audio.stop()
            except Exception:
                logger.exception("audio did not stop cleanly")

    async def _writer(self) -> None:
        transport = self._transport
        assert transport is not None
        while (frame := await self._outbox.get()) is not None:
            try:
                await transport.send(frame)
            except TransportClosed:
                return

    async def _reader(self) -> None:
        transport = self._transport
        assert transport is not None
        try:
            async with contextlib.aclosing(transport.messages()) as frames:
                async for frame in frames:
                    self._core.receive_frame(frame)
                    self._pump()
        except Exception:  # a bug must not leave the conversation half-open
            logger.exception("conversation reader failed")
            with contextlib.suppress(Exception):
                await transport.close(1011, "Client error")
        await self._finish(*transport.closed_with)

    async def _run_reader_until_closed(self) -> None:
        await self._reader()

    async def _finish(self, code: int | None, reason: str | None) -> None:
        self._outbox.put_nowait(None)
        self._audio_backlog.clear()
        self._set_agent_typing(False)
        await self._stop_audio()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self._core.connection_closed(code, reason)
        self._transport = None
        self._pump()

    def _finish_without_socket(self) -> None:
        self._core.connection_closed(None, None)
        self._pump()

    async def _close_socket(self, code: int, reason: str) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            await transport.close(code, reason)

    def _send(self, queued: bool) -> bool:
        if queued:
            self._pump()
        return queued

    def _pump(self) -> None:
        """Move the core's outputs: frames to the writer, events to handlers and listeners
        (and what handling them produced, before the next frame is read)."""
        while True:
            for frame in self._core.data_to_send():
                self._outbox.put_nowait(frame)
            events = self._core.events_received()
            if not events:
                return
            for event in events:
                self._handle(event)
                self._emit(event)

    def _handle(self, event: SessionEvent) -> None:
        match event:
            case MetadataReceived():
                self._metadata_event.set()
                if self._text_only:
                    # Nothing to start: connected now, before the greeting that follows
                    # the metadata is read (listeners see Connected first).
                    self._core.audio_ready()
            case AgentAudio() if self._media() is not None:
                pass  # alignment only: the voice plays from the transport's own audio
            case AgentAudio(audio=audio):
                if self._audio is not None and self._audio_running:
                    self._audio.play(audio)
                elif not self._text_only:
                    self._audio_backlog.append(audio)
            case Interruption():
                self._audio_backlog.clear()
                media = self._media()
                if media is not None:
                    media.interrupt()
                if self._audio is not None and self._audio_running:
                    self._audio.interrupt()
            case ClientToolCall():
                self._spawn(self._run_tool(event))
            case McpApprovalRequested(call=call):
                self._approvals[call.tool_call_id] = self._spawn(self._ask_approval(call))
            case McpApprovalClosed(tool_call_id=call_id):
                task = self._approvals.pop(call_id, None)
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
            case AgentTyping(is_typing=is_typing, duration_ms=duration_ms):
                self._set_agent_typing(is_typing, duration_ms)
            case AgentResponse():
                self._set_agent_typing(False)
            case ContextUsage():
                logger.info(
                    "context usage: %d of %d tokens (%s)",
                    event.context_tokens,
                    event.context_limit_tokens,
                    event.model,
                )
            case McpConnectionStatus(integrations=integrations):
                for item in integrations:
                    logger.log(
                        logging.INFO if item.is_connected else logging.WARNING,
                        "MCP %s %s: %s, %d tools",
                        item.integration_type,
                        item.integration_id,
                        "connected" if item.is_connected else "NOT connected",
                        item.tool_count,
                    )
            case CloseRequested(code=code, reason=reason):
                self._spawn(self._close_socket(code, reason))
            case LatencyMeasured(ms=ms):
                self._latency_ms = ms
            case ErrorReported(message=message):
                logger.warning("conversation error: %s", message)
            case Disconnected(details=details):
                self._last_details = details
                self._ended.set()
            case _:
                pass

    def _set_agent_typing(self, typing: bool, duration_ms: int | None = None) -> None:
        if self._typing_timer is not None:
            self._typing_timer.cancel()
            self._typing_timer = None
        if typing:
            # agent_typing's duration_ms says when to clear it; without one, a while later.
            delay = duration_ms / 1000.0 if duration_ms else AGENT_TYPING_TIMEOUT_S
            self._typing_timer = asyncio.get_running_loop().call_later(
                delay, self._set_agent_typing, False
            )
        if typing != self._agent_typing:
            self._agent_typing = typing
            self._emit(AgentTypingChanged(typing))

    async def _ask_approval(self, call: McpToolCall) -> None:
        """Ask the approver; no approver, no answer in time, or a failure is a denial."""
        approved = False
        timeout = approval_window_s(call)
        if self.approver is None:
            logger.info("MCP tool %s needs approval and nobody can give it", call.tool_name)
        else:
            try:
                async with asyncio.timeout(timeout):
                    approved = bool(await self.approver(call))
            except TimeoutError:
                logger.info("MCP tool %s: no approval within %.0f s", call.tool_name, timeout)
            except Exception:
                logger.exception("asking for the approval of %s failed", call.tool_name)
        self._approvals.pop(call.tool_call_id, None)
        self._send(self._core.send_mcp_approval(call.tool_call_id, approved))

    def _emit(self, event: SessionEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("conversation listener failed on %s", type(event).__name__)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _gate(self, call: ClientToolCall) -> str | None:
        """The tool gate's verdict (``None``: run it). A tool the registry does not know
        is not asked about: it fails as unknown."""
        timeout = _tool_timeout(self.tools, call.tool_name)
        if self.tool_gate is None or timeout <= 0:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await self.tool_gate(call, timeout)
        except TimeoutError:
            return REFUSED_NO_ANSWER.format(tool=call.tool_name)
        except Exception:
            logger.exception("deciding whether %s may run failed", call.tool_name)
            return REFUSED_NO_ANSWER.format(tool=call.tool_name)

    async def _run_tool(self, call: ClientToolCall) -> None:
        params: Mapping[str, Any] = call.parameters
        self._emit(ToolCallStarted(call.tool_call_id, call.tool_name, params))
        started = time.perf_counter()
        refusal = await self._gate(call)
        if refusal is not None:
            result, is_error, detail = f"{TOOL_FAILED_PREFIX}{refusal}", True, None
        else:
            result, is_error, detail = await execute_tool(self.tools, call.tool_name, params)
        duration_ms = 1000.0 * (time.perf_counter() - started)
        if self._core.send_tool_result(call.tool_call_id, result, is_error=is_error):
            self._pump()
        self._emit(
            ToolCallFinished(
                call.tool_call_id, call.tool_name, params, result, is_error, duration_ms, detail
            )
        )


def _tool_timeout(registry: ToolRegistry, name: str) -> float:
    tool = registry.get(name)
    return tool.definition.timeout_s if tool is not None else 0.0


def approval_window_s(call: McpToolCall) -> float:
    """How long the user has to approve ``call``: its approval timeout less a margin, so
    the answer reaches the server before it gives up."""
    timeout = float(call.approval_timeout_s or DEFAULT_APPROVAL_TIMEOUT_S)
    return max(0.0, timeout - APPROVAL_MARGIN_S)


def _with_default_events(extra: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if not extra:
        return None
    return tuple(dict.fromkeys((*DEFAULT_CLIENT_EVENTS, *extra)))


async def execute_tool(
    registry: ToolRegistry, name: str, parameters: Mapping[str, Any]
) -> tuple[str, bool, str | None]:
    """Run one client tool: ``(result string, is_error, detail for the user)``.

    Rules from ``convai-protocol.md``: an unknown tool and a raising tool are errors
    with the reference client's sentences; a tool still running after its timeout is
    an error too. Plain functions run in a daemon thread, never on the event loop.
    """
    tool = registry.get(name)
    if tool is None:
        return f"Client tool with name {name} is not defined on client", True, None
    timeout = tool.definition.timeout_s
    try:
        if tool.is_async:
            value = await asyncio.wait_for(tool.handler(parameters), timeout)
        else:
            value = await asyncio.wait_for(
                run_in_daemon_thread(f"tool-{name}", lambda: tool.handler(parameters)), timeout
            )
    except TimeoutError:
        return (
            f"{TOOL_FAILED_PREFIX}{name} did not finish within {timeout:g} s.",
            True,
            None,
        )
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        logger.info("client tool %s failed: %s", name, message)
        return f"{TOOL_FAILED_PREFIX}{message}", True, None
    if isinstance(value, ToolOutcome):
        return stringify_result(value.value), False, value.detail
    return stringify_result(value), False, None
