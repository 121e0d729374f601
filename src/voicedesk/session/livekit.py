"""The conversation over WebRTC, as ``@elevenlabs/client`` talks to agents: a LiveKit room.

Facts from ``convai-protocol.md`` ("Endpoints") and the official client: a token from
``/v1/convai/conversation/token``, the region's LiveKit server, every JSON message both
ways as a reliable data packet (UTF-8, no topic), the microphone as a published audio
track, the agent's voice as the audio track of the participant whose identity contains
"agent", the conversation id in the room's name, pcm_48000 both ways. ``audio`` events
still come as data but carry only alignment; the voice plays from the track.

The room is behind :class:`Room`, the few calls of ``livekit.rtc.Room`` used here, so
that the transport's rules can be tested with a room of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

from voicedesk.protocol.formats import AudioFormat, parse_audio_format
from voicedesk.session.transport import AudioHandler, TransportClosed, TransportError

logger = logging.getLogger(__name__)

AUDIO_FORMAT: AudioFormat = parse_audio_format("pcm_48000")
AGENT_IDENTITY = "agent"  # the agent's participant identity contains this
NORMAL_CLOSURE = 1000
#: Agent audio louder than this (int16 peak) is speech: the track runs on in silence
#: between replies, which must neither play as "speaking" nor hold the speaker.
AUDIBLE_PEAK = 300
#: Silence inside a reply (a pause between words) keeps playing this long.
AUDIBLE_HANGOVER_MS = 400
#: After an interruption, the track must be quiet this long before it plays again.
INTERRUPTED_SETTLE_MS = 120
#: The SDK's direct capture takes 10 ms frames.
SOURCE_FRAME_SAMPLES = AUDIO_FORMAT.sample_rate // 100
#: The agent's track comes to Python in frames this long (the SDK's default; each frame
#: is a call from the SDK's thread into Python). 20 ms cost 2-5 points less CPU but made
#: the agent's first sound 11-30 ms later, and less regular (bench/README.md).
AGENT_FRAME_MS = 10
MIC_QUEUE_CHUNKS = 25  # microphone chunks waiting for the room at most (~0.5 s)
#: The room's disconnect reasons that mean the service ended the call (others: lost).
ENDED_BY_SERVER = frozenset({"ROOM_DELETED", "ROOM_CLOSED", "PARTICIPANT_REMOVED"})
_CONVERSATION_ID = re.compile(r"conv_[A-Za-z0-9]+")


class Room(Protocol):
    """What the transport needs of a LiveKit room (``livekit.rtc.Room`` has it all)."""

    @property
    def name(self) -> str: ...

    def on(self, event: Any, callback: Any = None) -> Any: ...

    async def connect(self, url: str, token: str, options: Any = ...) -> None: ...

    async def disconnect(self) -> None: ...


class MediaBridge(Protocol):
    """The audio side of a room: the microphone track we publish, the agent's track we
    play. Built by :func:`livekit_media` for a real room."""

    async def publish_microphone(self) -> None: ...

    async def send(self, pcm: bytes) -> None: ...

    def agent_audio(self, track: Any) -> AsyncGenerator[bytes, None]: ...

    async def publish_data(self, data: bytes) -> None: ...


def conversation_id_of(room_name: str) -> str:
    """The conversation id in a room's name (``…conv_<id>…``); the name if none."""
    found = _CONVERSATION_ID.search(room_name)
    return found.group(0) if found else room_name


class AudibleGate:
    """Passes the agent's track while it is audible, and for a short hangover after, so
    a reply plays whole and the silence between replies does not."""

    def __init__(
        self,
        rate: int,
        peak: int = AUDIBLE_PEAK,
        hangover_ms: float = AUDIBLE_HANGOVER_MS,
        settle_ms: float = INTERRUPTED_SETTLE_MS,
    ) -> None:
        self._peak = peak
        self._hangover = int(rate * hangover_ms / 1000.0)
        self._settle = int(rate * settle_ms / 1000.0)
        self._quiet_for = self._hangover  # samples since the last audible one
        self._interrupted = False

    def interrupt(self) -> None:
        """The user cut the agent off: what is still on its way of the reply (the jitter
        buffer's worth) is dropped until the track has been quiet for a moment."""
        self._interrupted = True
        self._quiet_for = 0

    def __call__(self, pcm: bytes) -> bytes | None:
        import numpy as np  # here: this module is on the window's start-up path

        samples = np.frombuffer(pcm, dtype="<i2")
        audible = bool(samples.size) and int(np.abs(samples.astype(np.int32)).max()) > self._peak
        if self._interrupted:
            self._quiet_for = 0 if audible else self._quiet_for + samples.size
            if self._quiet_for < self._settle:
                return None
            self._interrupted = False
            self._quiet_for = self._hangover
            return None
        if audible:
            self._quiet_for = 0
            return pcm
        if self._quiet_for >= self._hangover:
            return None
        self._quiet_for += samples.size
        return pcm


class LiveKitTransport:
    """A conversation's messages and audio through one LiveKit room."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        connect_timeout_s: float,
        room: Room | None = None,
        media: Callable[[Room], MediaBridge] | None = None,
        with_microphone: bool = True,
    ) -> None:
        self._url = url
        self._token = token
        self._connect_timeout_s = connect_timeout_s
        self._room = room
        self._media_factory = media
        self._media: MediaBridge | None = None
        self._with_microphone = with_microphone
        self._inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._mic: asyncio.Queue[bytes] = asyncio.Queue(MIC_QUEUE_CHUNKS)
        self._audio_handler: AudioHandler | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed_with: tuple[int | None, str | None] = (None, None)
        self._open = False
        self._gate = AudibleGate(AUDIO_FORMAT.sample_rate)

    # ------------------------------------------------------------------ Transport

    async def open(self) -> None:
        room = self._room
        if room is None:
            room = self._room = _new_room()
        room.on("data_received", self._on_data)
        room.on("track_subscribed", self._on_track)
        room.on("participant_disconnected", self._on_participant_left)
        room.on("disconnected", self._on_room_lost)
        self._media = (self._media_factory or livekit_media)(room)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await room.connect(self._url, self._token)
        except TimeoutError:
            await self._disconnect_quietly()
            raise TransportError(
                f"The WebRTC server did not answer within {self._connect_timeout_s:g} s. Check "
                "your network, or talk over the websocket (--transport websocket).",
                transient=True,
            ) from None
        except Exception as exc:  # livekit.rtc.ConnectError, or the room's own failure
            logger.warning("WebRTC connect failed: %s", type(exc).__name__)
            await self._disconnect_quietly()
            raise TransportError(
                "Could not join the conversation's WebRTC room. Check your network, or talk "
                "over the websocket (--transport websocket).",
                transient=True,
            ) from None
        self._open = True
        if self._with_microphone:
            try:
                await self._media.publish_microphone()
            except Exception as exc:
                logger.warning("publishing the microphone failed: %s", type(exc).__name__)
                await self._disconnect_quietly()
                raise TransportError(
                    "The microphone could not be sent to the conversation's WebRTC room. Try "
                    "again, or talk over the websocket (--transport websocket)."
                ) from None
            self._spawn(self._send_microphone())

    @property
    def media(self) -> LiveKitTransport:
        """The room's tracks carry the voice (:class:`TransportMedia`)."""
        return self

    @property
    def conversation_id(self) -> str:
        return conversation_id_of(self._room.name if self._room is not None else "")

    @property
    def audio_format(self) -> AudioFormat:
        return AUDIO_FORMAT

    async def send(self, message: str) -> None:
        if not self._open or self._media is None:
            raise TransportClosed
        try:
            await self._media.publish_data(message.encode("utf-8"))
        except Exception as exc:
            logger.warning("sending a data packet failed: %s", type(exc).__name__)
            raise TransportClosed from None

    async def messages(self) -> AsyncGenerator[str | bytes, None]:
        while (message := await self._inbox.get()) is not None:
            yield message

    async def close(self, code: int, reason: str) -> None:
        await self._shut((None, None))

    def abort(self) -> None:
        self._spawn(self._shut((None, None)))

    @property
    def closed_with(self) -> tuple[int | None, str | None]:
        return self._closed_with

    # ------------------------------------------------------------------ TransportMedia

    def set_audio_handler(self, handler: AudioHandler | None) -> None:
        """Where the agent's voice goes (pcm_48000), audible parts only."""
        self._audio_handler = handler

    def interrupt(self) -> None:
        """The agent was interrupted: drop the rest of its reply still arriving."""
        self._gate.interrupt()

    def send_audio(self, pcm: bytes) -> None:
        """The microphone (pcm_48000, after echo cancellation) to the room. Dropped when
        the room is not taking it fast enough: late microphone audio is no use."""
        if not self._open:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._mic.put_nowait(pcm)

    async def _send_microphone(self) -> None:
        assert self._media is not None
        while self._open:
            pcm = await self._mic.get()
            try:
                await self._media.send(pcm)
            except Exception as exc:
                logger.warning("the microphone track failed: %s", type(exc).__name__)
                return

    async def _play_agent(self, track: Any) -> None:
        assert self._media is not None
        async with contextlib.aclosing(self._media.agent_audio(track)) as frames:
            async for pcm in frames:
                audible = self._gate(pcm)
                if audible is not None and self._audio_handler is not None:
                    self._audio_handler(audible)

    # ------------------------------------------------------------------ room events

    def _on_data(self, packet: Any) -> None:
        data = getattr(packet, "data", packet)
        if not isinstance(data, bytes | bytearray | memoryview):
            return
        try:
            self._inbox.put_nowait(bytes(data).decode("utf-8"))  # UTF-8 JSON, as text
        except UnicodeDecodeError:
            self._inbox.put_nowait(bytes(data))  # the core reports it as malformed

    def _on_track(self, track: Any, publication: Any, participant: Any) -> None:
        if _is_agent(participant) and _is_audio(track):
            self._spawn(self._play_agent(track))

    def _on_participant_left(self, participant: Any) -> None:
        if _is_agent(participant):
            # As the official client: the agent leaving ends the call as ended by it.
            self._spawn(self._shut((NORMAL_CLOSURE, None)))

    def _on_room_lost(self, reason: Any = None) -> None:
        if not self._open:
            return
        name = _reason_name(reason)
        logger.info("the WebRTC room disconnected: %s", name)
        if name in ENDED_BY_SERVER:
            # The service closed the room or removed us from it: the call is over, as
            # the websocket's close with 1000.
            self._spawn(self._shut((NORMAL_CLOSURE, None)))
        else:
            self._spawn(self._shut((None, None)))

    # ------------------------------------------------------------------ internals

    async def _shut(self, closed_with: tuple[int | None, str | None]) -> None:
        if not self._open:
            return
        self._open = False
        self._closed_with = closed_with
        await self._disconnect_quietly()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self._inbox.put_nowait(None)

    async def _disconnect_quietly(self) -> None:
        if self._room is None:
            return
        try:
            async with asyncio.timeout(2.0):
                await self._room.disconnect()
        except Exception as exc:
            logger.info("leaving the WebRTC room: %s", type(exc).__name__)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _reason_name(reason: Any) -> str:
    """The name of a ``livekit.rtc.DisconnectReason`` value (a plain string passes)."""
    if isinstance(reason, str):
        return reason
    try:
        from livekit import rtc

        return str(rtc.DisconnectReason.Name(reason))
    except (ImportError, ValueError, TypeError):
        return str(reason)


def _is_agent(participant: Any) -> bool:
    return AGENT_IDENTITY in str(getattr(participant, "identity", ""))


def _is_audio(track: Any) -> bool:
    from livekit import rtc

    return bool(getattr(track, "kind", None) == rtc.TrackKind.KIND_AUDIO)


def _new_room() -> Room:
    from livekit import rtc

    room: Room = rtc.Room(loop=asyncio.get_running_loop())
    return room


class _LiveKitMedia:
    """:class:`MediaBridge` for a real ``livekit.rtc.Room``."""

    def __init__(self, room: Any) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._room = room
        # No queue in the SDK: each 10 ms frame goes straight to the encoder (its queue,
        # 1 s by default, fills on every late chunk and never drains: latency).
        self._source = rtc.AudioSource(AUDIO_FORMAT.sample_rate, 1, queue_size_ms=0)
        self._partial = b""

    async def publish_microphone(self) -> None:
        rtc = self._rtc
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self._room.local_participant.publish_track(track, options)

    async def send(self, pcm: bytes) -> None:
        step = 2 * SOURCE_FRAME_SAMPLES
        data = self._partial + pcm if self._partial else pcm
        whole = len(data) - len(data) % step
        self._partial = data[whole:]  # a chunk that is not a multiple of 10 ms
        for start in range(0, whole, step):
            frame = self._rtc.AudioFrame(
                data[start : start + step], AUDIO_FORMAT.sample_rate, 1, SOURCE_FRAME_SAMPLES
            )
            await self._source.capture_frame(frame)

    async def agent_audio(self, track: Any) -> AsyncGenerator[bytes, None]:
        stream = self._rtc.AudioStream(
            track,
            sample_rate=AUDIO_FORMAT.sample_rate,
            num_channels=1,
            frame_size_ms=AGENT_FRAME_MS,
        )
        try:
            async for event in stream:
                yield bytes(event.frame.data.cast("B"))
        finally:
            await stream.aclose()

    async def publish_data(self, data: bytes) -> None:
        await self._room.local_participant.publish_data(data, reliable=True)


def livekit_media(room: Room) -> MediaBridge:
    return _LiveKitMedia(room)
