"""A loopback stand-in for a LiveKit server, one room, one client, for tests.

The real ``livekit`` SDK (``livekit.rtc.Room``, libwebrtc underneath) connects to it as it
would to ElevenLabs' LiveKit server: a websocket at ``/rtc/v1?join_request=…`` carrying the
signalling protobufs of ``livekit-protocol``, then one WebRTC peer connection (the SDK's
"single peer connection" mode) run here by aiortc. The room holds the client and one agent
participant (identity containing "agent") who publishes one audio track, the agent's voice.

What a test can do:

- feed the agent's voice: :meth:`LiveKitStandIn.play` queues int16 PCM at 48 kHz mono
  (silence is sent when nothing is queued);
- listen to the client's microphone: :attr:`LiveKitStandIn.microphone` collects decoded
  chunks (48 kHz mono int16), :meth:`LiveKitStandIn.wait_for_microphone` waits for sound;
- exchange data packets: :meth:`LiveKitStandIn.send_data` sends a reliable user packet as
  the agent, :attr:`LiveKitStandIn.on_data` / :attr:`LiveKitStandIn.received_data` see the
  client's packets; with ``check_contract=True`` every packet both ways is validated
  against the official contract (:attr:`LiveKitStandIn.contract_violations`);
- end the call: :meth:`LiveKitStandIn.agent_leave` (the agent leaves the room),
  :meth:`LiveKitStandIn.end_room` (the server tells the client to leave),
  :meth:`LiveKitStandIn.drop` (signalling and media cut without a word).

WebRTC's ICE never uses loopback addresses, so the stand-in and the client must run inside a
network namespace of the test's own (see :mod:`tests.webrtc.netns`), never on a host's real
interfaces.

Threads: everything runs on the event loop that called :meth:`LiveKitStandIn.start`; no
method is thread-safe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fractions
import gzip
import json
import logging
import secrets
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt
from aiortc import (
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from livekit.protocol import models as lk_models
from livekit.protocol import rtc as lk_rtc
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 48_000
#: One audio frame of the agent's voice: 20 ms, Opus' usual packet length.
FRAME_SAMPLES = SAMPLE_RATE_HZ // 50

PcmArray = npt.NDArray[np.int16]

#: The LiveKit server version announced in the join response; the SDK only logs it.
_SERVER_VERSION = "1.9.0"
#: Seconds between the client's pings, and before a silent server counts as gone.
_PING_INTERVAL_S = 5
_PING_TIMEOUT_S = 15


def _new_sid(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class ReceivedData:
    """A user data packet the client published."""

    payload: bytes
    topic: str
    reliable: bool
    participant_identity: str
    received_at: float


@dataclass(frozen=True)
class MicrophoneChunk:
    """Decoded audio of the client's microphone track: 48 kHz mono int16 samples."""

    received_at: float
    samples: PcmArray

    @property
    def rms(self) -> float:
        """Root mean square level, 0..1 of full scale."""
        if self.samples.size == 0:
            return 0.0
        as_float = self.samples.astype(np.float64) / 32768.0
        return float(np.sqrt(np.mean(as_float * as_float)))


MAX_LAG_S = 0.1  # how far the agent's track may fall behind real time before it skips


class AgentVoiceTrack(MediaStreamTrack):
    """The agent's audio track: queued PCM, or silence, in real-time 20 ms frames.

    ``play()`` may be called any time from the event loop; samples are sent in order.
    """

    kind = "audio"

    def __init__(self, track_sid: str) -> None:
        super().__init__()
        self._track_sid = track_sid
        self._pending: deque[PcmArray] = deque()
        self._pending_samples = 0
        self._sent_samples = 0
        self._clock_start: float | None = None

    @property
    def id(self) -> str:
        # The SDK matches a received track to its publication by this id (the track sid).
        return self._track_sid

    @property
    def pending_samples(self) -> int:
        """Samples queued by :meth:`play` and not yet sent."""
        return self._pending_samples

    def play(self, samples: PcmArray) -> None:
        """Queue ``samples`` (int16, 48 kHz, mono) after anything queued before."""
        mono = np.ascontiguousarray(samples, dtype=np.int16).reshape(-1)
        if mono.size:
            self._pending.append(mono)
            self._pending_samples += mono.size

    def clear(self) -> None:
        """Drop whatever is queued (the agent is interrupted)."""
        self._pending.clear()
        self._pending_samples = 0

    def _take_frame(self) -> PcmArray:
        frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        filled = 0
        while filled < FRAME_SAMPLES and self._pending:
            head = self._pending[0]
            count = min(FRAME_SAMPLES - filled, head.size)
            frame[filled : filled + count] = head[:count]
            filled += count
            if count == head.size:
                self._pending.popleft()
            else:
                self._pending[0] = head[count:]
        self._pending_samples -= filled
        return frame

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._clock_start is None:
            self._clock_start = now
        else:
            due = self._clock_start + self._sent_samples / SAMPLE_RATE_HZ
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > MAX_LAG_S:
                # Fell behind (the sender started late, the loop was busy): go on from
                # now, as a real server's track does, instead of a burst of old frames
                # that the receiver's jitter buffer would turn into seconds of delay.
                self._clock_start = now - self._sent_samples / SAMPLE_RATE_HZ
        samples = self._take_frame()
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = self._sent_samples
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
        self._sent_samples += FRAME_SAMPLES
        return frame


@dataclass
class _Participant:
    sid: str
    identity: str
    name: str
    kind: lk_models.ParticipantInfo.Kind = lk_models.ParticipantInfo.Kind.STANDARD
    tracks: list[lk_models.TrackInfo] = field(default_factory=list)
    state: lk_models.ParticipantInfo.State = lk_models.ParticipantInfo.State.ACTIVE
    version: int = 1

    def info(self) -> lk_models.ParticipantInfo:
        return lk_models.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            state=self.state,
            tracks=self.tracks,
            joined_at=int(time.time()),
            version=self.version,
            kind=self.kind,
            is_publisher=bool(self.tracks),
            permission=lk_models.ParticipantPermission(
                can_subscribe=True, can_publish=True, can_publish_data=True
            ),
        )


DataHook = Callable[[ReceivedData], None]


class LiveKitStandIn:
    """One LiveKit room on ``ws://127.0.0.1:PORT`` for one client at a time.

    Call order: ``await start()``, connect the client to :attr:`url` with any token, then use
    the methods below; ``await stop()`` at the end (safe to call twice, or after ``drop()``).
    """

    def __init__(
        self,
        *,
        room_name: str | None = None,
        agent_identity: str = "agent_stand_in",
        client_identity: str = "user",
        host: str = "127.0.0.1",
        on_data: DataHook | None = None,
        agent_in_room: bool = True,
        on_microphone: Callable[[PcmArray], None] | None = None,
        check_contract: bool = False,
    ) -> None:
        self.room_name = room_name or f"conv_{secrets.token_hex(8)}"
        #: Whether every data packet, both ways, must be a JSON message of the official
        #: contract (``tests/contract.py``, when the contract is there): what is not is
        #: listed in :attr:`contract_violations`.
        self.check_contract = check_contract
        self.contract_violations: list[str] = []
        #: How many packets were validated (0: the contract was not there, or no packet).
        self.contract_checked = 0
        #: False until :meth:`agent_join` when the stand-in was made with
        #: ``agent_in_room=False`` (the agent joins after the client, as ElevenLabs' does).
        self.agent_in_room = agent_in_room
        self.host = host
        self.on_data = on_data
        #: Called with each decoded microphone chunk (int16, 48 kHz mono) as it arrives.
        self.on_microphone = on_microphone
        #: Every bearer token a client presented, in order (any token is accepted).
        self.tokens: list[str] = []
        #: Every user packet the client published, in order.
        self.received_data: list[ReceivedData] = []
        #: Decoded microphone audio, in order of arrival.
        self.microphone: list[MicrophoneChunk] = []
        #: Set when a client has joined, the answer sent; cleared by ``drop()``.
        self.client_joined = asyncio.Event()
        #: Set when the client's data channel from us is open (``send_data`` may be used).
        self.data_channel_open = asyncio.Event()
        #: Set when the client said it leaves, or its socket closed.
        self.client_left = asyncio.Event()
        #: The ICE candidates seen: the client's (trickled) and ours (in our answers), as
        #: SDP ``candidate:`` lines, so that a test can check which addresses ICE used.
        self.client_candidates: list[str] = []
        self.server_candidates: list[str] = []
        #: Errors the stand-in hit while serving the client (a test should expect none).
        self.errors: list[str] = []

        self._room_sid = _new_sid("RM_")
        self._agent_track_sid = _new_sid("TR_")
        self._agent = _Participant(
            sid=_new_sid("PA_"),
            identity=agent_identity,
            name="Agent",
            kind=lk_models.ParticipantInfo.Kind.AGENT,
            tracks=[
                lk_models.TrackInfo(
                    sid=self._agent_track_sid,
                    type=lk_models.TrackType.AUDIO,
                    name="agent_voice",
                    source=lk_models.TrackSource.MICROPHONE,
                    mime_type="audio/opus",
                )
            ],
        )
        self._client = _Participant(sid=_new_sid("PA_"), identity=client_identity, name="")
        self.voice = AgentVoiceTrack(self._agent_track_sid)

        self._server: Server | None = None
        self._port: int | None = None
        self._socket: ServerConnection | None = None
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._agent_mid: str | None = None
        self._data_sequence = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._microphone_changed = asyncio.Condition()
        self._refuse_clients = False
        self._answer_with_leave = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT``, the URL to give ``Room.connect``."""
        if self._port is None:
            raise RuntimeError("LiveKitStandIn.url is known only after start()")
        return f"ws://{self.host}:{self._port}"

    @property
    def agent_identity(self) -> str:
        return self._agent.identity

    @property
    def client_identity(self) -> str:
        return self._client.identity

    async def start(self) -> None:
        """Listen on a free port of :attr:`host`."""
        self._server = await serve(
            self._serve_client,
            self.host,
            0,
            process_request=self._check_request,
            compression=None,
            max_size=2**22,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the client's connection (if any) and stop listening."""
        self._refuse_clients = True
        await self._close_session(abrupt=False)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.voice.stop()

    # ------------------------------------------------------------------ what a test does

    def play(self, samples: PcmArray) -> None:
        """The agent says ``samples`` (int16, 48 kHz, mono), after whatever it is saying."""
        self.voice.play(samples)

    async def send_data(self, payload: bytes, *, topic: str = "") -> None:
        """Send ``payload`` to the client as a reliable user packet from the agent."""
        await asyncio.wait_for(self.data_channel_open.wait(), timeout=10)
        if self._channel is None or self._channel.readyState != "open":
            raise RuntimeError("the client's data channel is not open")
        self._validate("server", payload)
        self._data_sequence += 1
        packet = lk_models.DataPacket(
            kind=lk_models.DataPacket.Kind.RELIABLE,
            participant_identity=self._agent.identity,
            participant_sid=self._agent.sid,
            sequence=self._data_sequence,
            user=lk_models.UserPacket(
                participant_sid=self._agent.sid,
                participant_identity=self._agent.identity,
                payload=payload,
                topic=topic,
            ),
        )
        self._channel.send(packet.SerializeToString())

    def microphone_audio(self, since: float = 0.0) -> PcmArray:
        """The microphone samples received at or after ``since`` (``time.monotonic()``)."""
        parts = [c.samples for c in self.microphone if c.received_at >= since]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(parts)

    async def wait_for_microphone(
        self, *, min_rms: float = 0.01, min_duration_s: float = 0.2, timeout_s: float = 10.0
    ) -> PcmArray:
        """Wait until ``min_duration_s`` of microphone audio in a row is louder than
        ``min_rms`` (0..1); return those samples. Raises TimeoutError otherwise."""
        needed = int(min_duration_s * SAMPLE_RATE_HZ)

        def loud_run() -> PcmArray | None:
            run: list[PcmArray] = []
            count = 0
            for chunk in self.microphone:
                if chunk.rms >= min_rms:
                    run.append(chunk.samples)
                    count += chunk.samples.size
                    if count >= needed:
                        return np.concatenate(run)
                else:
                    run, count = [], 0
            return None

        async with asyncio.timeout(timeout_s), self._microphone_changed:
            while (found := loud_run()) is None:
                await self._microphone_changed.wait()
            return found

    async def wait_for_data(
        self, predicate: Callable[[ReceivedData], bool] | None = None, *, timeout_s: float = 10.0
    ) -> ReceivedData:
        """The first received packet (already or soon) for which ``predicate`` holds."""
        async with asyncio.timeout(timeout_s):
            while True:
                for packet in self.received_data:
                    if predicate is None or predicate(packet):
                        return packet
                await asyncio.sleep(0.02)

    async def agent_join(self) -> None:
        """The agent enters the room (made with ``agent_in_room=False``): the client sees
        ``participant_connected``, then ``track_subscribed`` for the agent's voice.

        With one peer connection the server cannot offer: it asks the client for a new
        offer with a receive-only audio section (``media_sections_requirement``) and sends
        the agent's voice in its answer to that offer."""
        if self.agent_in_room:
            return
        self.agent_in_room = True
        self._agent.state = lk_models.ParticipantInfo.State.ACTIVE
        self._agent.version += 1
        await self._send(
            lk_rtc.SignalResponse(
                update=lk_rtc.ParticipantUpdate(participants=[self._agent.info()])
            )
        )
        await self._send(
            lk_rtc.SignalResponse(
                media_sections_requirement=lk_rtc.MediaSectionsRequirement(num_audios=1)
            )
        )

    async def agent_leave(self) -> None:
        """The agent leaves the room: the client sees ``participant_disconnected``."""
        self._agent.state = lk_models.ParticipantInfo.State.DISCONNECTED
        self._agent.version += 1
        self.voice.clear()
        info = self._agent.info()
        info.disconnect_reason = lk_models.DisconnectReason.CLIENT_INITIATED
        await self._send(
            lk_rtc.SignalResponse(update=lk_rtc.ParticipantUpdate(participants=[info]))
        )

    async def end_room(
        self, reason: lk_models.DisconnectReason = lk_models.DisconnectReason.ROOM_DELETED
    ) -> None:
        """The server tells the client to leave for good (as when a room is deleted)."""
        await self._send(
            lk_rtc.SignalResponse(
                leave=lk_rtc.LeaveRequest(
                    can_reconnect=False, reason=reason, action=lk_rtc.LeaveRequest.Action.DISCONNECT
                )
            )
        )

    async def drop(self, *, reconnection: Literal["refuse", "leave"] = "refuse") -> None:
        """Cut signalling and media without a word (a network failure or a crash).

        The SDK then tries to reconnect. ``reconnection="refuse"`` stops listening, so every
        attempt fails (connection refused) and the SDK gives up after its ten jittered
        attempts, 16 to 30 s, reporting ``disconnected``; ``"leave"`` accepts the next attempt and
        answers it with a ``leave`` (no reconnection), so the SDK gives up within a second.
        """
        if reconnection == "refuse":
            self._refuse_clients = True
            if self._server is not None:
                # Stop listening so that the SDK's reconnection attempts fail at once.
                self._server.close(close_connections=False)
        else:
            self._answer_with_leave = True
        await self._close_session(abrupt=True)

    # ------------------------------------------------------------------ signalling

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urllib.parse.urlsplit(request.path).path
        if self._refuse_clients:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "room closed\n")
        if path.rstrip("/") != "/rtc/v1":
            # /rtc is the older two-peer-connection protocol, which this stand-in lacks.
            logger.warning("stand-in: refused %s", request.path)
            return connection.respond(HTTPStatus.NOT_FOUND, "only /rtc/v1 is served here\n")
        return None

    async def _serve_client(self, socket: ServerConnection) -> None:
        if self._socket is not None:
            await socket.close(1008, "one client at a time")
            return
        self._socket = socket
        self.client_left.clear()
        try:
            join = self._decode_join(socket.request)
            if self._answer_with_leave:
                await self.end_room(lk_models.DisconnectReason.SIGNAL_CLOSE)
                await socket.close()
                return
            await self._join(join)
            async for message in socket:
                if isinstance(message, str):
                    continue
                request = lk_rtc.SignalRequest()
                request.ParseFromString(message)
                await self._handle(request)
        except ConnectionClosed:
            pass
        except Exception as exc:
            # Kept for the test to assert on; the client sees its socket close.
            logger.exception("stand-in: signalling failed")
            self.errors.append(f"{type(exc).__name__}: {exc}")
            await socket.close(1011, "stand-in error")
        finally:
            if self._socket is socket:
                self._socket = None
            self.client_left.set()

    def _decode_join(self, request: Request | None) -> lk_rtc.JoinRequest:
        if request is None:
            raise RuntimeError("no HTTP request on the signalling socket")
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            self.tokens.append(authorization.removeprefix("Bearer "))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        encoded = query.get("join_request", [""])[0]
        wrapped = lk_rtc.WrappedJoinRequest()
        wrapped.ParseFromString(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        raw = wrapped.join_request
        if wrapped.compression == lk_rtc.WrappedJoinRequest.Compression.GZIP:
            raw = gzip.decompress(raw)
        join = lk_rtc.JoinRequest()
        join.ParseFromString(raw)
        return join

    async def _join(self, join: lk_rtc.JoinRequest) -> None:
        logger.info(
            "stand-in: join from %s %s (reconnect=%s)",
            lk_models.ClientInfo.SDK.Name(join.client_info.sdk),
            join.client_info.version,
            join.reconnect,
        )
        await self._send(lk_rtc.SignalResponse(join=self._join_response()))
        self._pc = self._new_peer_connection()
        if join.HasField("publisher_offer"):
            await self._answer(join.publisher_offer)
        self.client_joined.set()

    def _join_response(self) -> lk_rtc.JoinResponse:
        return lk_rtc.JoinResponse(
            room=lk_models.Room(
                sid=self._room_sid,
                name=self.room_name,
                creation_time=int(time.time()),
                num_participants=2,
                num_publishers=1,
            ),
            participant=self._client.info(),
            other_participants=[self._agent.info()] if self.agent_in_room else [],
            server_version=_SERVER_VERSION,
            server_info=lk_models.ServerInfo(
                edition=lk_models.ServerInfo.Edition.Standard,
                version=_SERVER_VERSION,
                protocol=16,
                region="loopback",
                node_id="stand-in",
            ),
            ping_interval=_PING_INTERVAL_S,
            ping_timeout=_PING_TIMEOUT_S,
            subscriber_primary=False,
        )

    async def _handle(self, request: lk_rtc.SignalRequest) -> None:
        kind = request.WhichOneof("message")
        logger.debug("stand-in: <- %s", kind)
        if kind == "offer":
            await self._answer(request.offer)
        elif kind == "trickle":
            await self._add_candidate(request.trickle)
        elif kind == "add_track":
            await self._publish_client_track(request.add_track)
        elif kind == "ping_req":
            await self._send(
                lk_rtc.SignalResponse(
                    pong_resp=lk_rtc.Pong(
                        last_ping_timestamp=request.ping_req.timestamp,
                        timestamp=int(time.time() * 1000),
                    )
                )
            )
        elif kind == "ping":
            await self._send(lk_rtc.SignalResponse(pong=int(time.time() * 1000)))
        elif kind == "leave":
            logger.info("stand-in: the client leaves")
            self.client_left.set()
            await self._close_session(abrupt=False)
        else:
            logger.debug("stand-in: ignored %s", kind)

    async def _send(self, response: lk_rtc.SignalResponse) -> None:
        logger.debug("stand-in: -> %s", response.WhichOneof("message"))
        if self._socket is None:
            raise RuntimeError("no client is connected to the stand-in")
        await self._socket.send(response.SerializeToString())

    async def _publish_client_track(self, request: lk_rtc.AddTrackRequest) -> None:
        track = lk_models.TrackInfo(
            sid=_new_sid("TR_"),
            type=request.type,
            name=request.name,
            source=request.source,
            muted=request.muted,
            disable_dtx=request.disable_dtx,
            stereo=request.stereo,
            mime_type="audio/opus" if request.type == lk_models.TrackType.AUDIO else "",
            stream=request.stream,
        )
        self._client.tracks.append(track)
        await self._send(
            lk_rtc.SignalResponse(
                track_published=lk_rtc.TrackPublishedResponse(cid=request.cid, track=track)
            )
        )

    # ------------------------------------------------------------------ WebRTC

    def _new_peer_connection(self) -> RTCPeerConnection:
        pc = RTCPeerConnection()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(self._listen_to_microphone(track))

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            logger.debug("stand-in: the client opened data channel %r", channel.label)
            self._watch_channel(channel)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            logger.info("stand-in: peer connection %s", pc.connectionState)

        return pc

    async def _answer(self, offer: lk_rtc.SessionDescription) -> None:
        pc = self._pc
        if pc is None:
            return
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type=offer.type))
        if self._agent_mid is None and self.agent_in_room:
            self._attach_agent_voice(pc)
        if self._channel is None and pc.sctp is not None:
            self._channel = pc.createDataChannel("_reliable", ordered=True)
            self._watch_channel(self._channel)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        local = pc.localDescription
        for line in local.sdp.splitlines():
            if line.startswith("a=candidate:") and line[2:] not in self.server_candidates:
                self.server_candidates.append(line[2:])
        mapping = {self._agent_mid: self._agent_track_sid} if self._agent_mid else {}
        await self._send(
            lk_rtc.SignalResponse(
                answer=lk_rtc.SessionDescription(
                    type=local.type, sdp=local.sdp, id=offer.id, mid_to_track_id=mapping
                )
            )
        )

    def _attach_agent_voice(self, pc: RTCPeerConnection) -> None:
        # The SDK's first offer holds receive-only audio sections for tracks the server may
        # send; the agent's voice takes the first one. The stream id "PA_<sid>|TR_<sid>" is
        # how the SDK ties the track to the agent participant (the msid's first half).
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio" and transceiver.sender.track is None:
                sender: RTCRtpSender = pc.addTrack(self.voice)
                sender._stream_id = f"{self._agent.sid}|{self._agent_track_sid}"
                self._agent_mid = transceiver.mid
                return
        logger.warning("stand-in: the client's offer has no audio section for the agent")

    async def _add_candidate(self, trickle: lk_rtc.TrickleRequest) -> None:
        if self._pc is None:
            return
        init: dict[str, Any] = json.loads(trickle.candidateInit or "{}")
        line = str(init.get("candidate", ""))
        if not line:
            return
        self.client_candidates.append(line)
        candidate = candidate_from_sdp(line.removeprefix("candidate:"))
        candidate.sdpMid = init.get("sdpMid")
        candidate.sdpMLineIndex = init.get("sdpMLineIndex")
        await self._pc.addIceCandidate(candidate)

    def _watch_channel(self, channel: RTCDataChannel) -> None:
        @channel.on("open")
        def on_open() -> None:
            if channel is self._channel:
                self.data_channel_open.set()

        @channel.on("message")
        def on_message(message: bytes | str) -> None:
            if isinstance(message, str):
                message = message.encode()
            self._on_data_packet(message, channel.label)

        if channel is self._channel and channel.readyState == "open":
            self.data_channel_open.set()

    def _on_data_packet(self, raw: bytes, label: str) -> None:
        packet = lk_models.DataPacket()
        try:
            packet.ParseFromString(raw)
        except Exception:
            logger.warning("stand-in: undecodable data packet of %d bytes", len(raw))
            return
        if packet.WhichOneof("value") != "user":
            return
        received = ReceivedData(
            payload=packet.user.payload,
            topic=packet.user.topic,
            # Newer SDKs leave the deprecated ``kind`` unset: the channel tells reliability.
            reliable=label == "_reliable" or packet.kind == lk_models.DataPacket.Kind.RELIABLE,
            participant_identity=packet.participant_identity or self._client.identity,
            received_at=time.monotonic(),
        )
        self.received_data.append(received)
        self._validate("client", received.payload)
        if self.on_data is not None:
            self.on_data(received)

    def _validate(self, direction: str, payload: bytes) -> None:
        """Check one data packet against the contract (``direction``: ``"server"``, the
        agent's; ``"client"``, the client's)."""
        if not self.check_contract:
            return
        from tests import contract

        if not contract.available():
            return
        self.contract_checked += 1
        try:
            message = json.loads(payload)
        except ValueError:
            self.contract_violations.append(f"{direction}: not JSON: {payload[:80]!r}")
            return
        kind = contract.key_of(message) or "?"
        for error in contract.validate(direction, message):
            self.contract_violations.append(
                f"{direction} {kind}: {error} ({contract.excerpt(message)})"
            )

    async def _listen_to_microphone(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            for mono in resampler.resample(frame):
                samples = mono.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                self.microphone.append(MicrophoneChunk(time.monotonic(), samples))
                if self.on_microphone is not None:
                    self.on_microphone(samples)
            async with self._microphone_changed:
                self._microphone_changed.notify_all()

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_session(self, *, abrupt: bool) -> None:
        socket, self._socket = self._socket, None
        pc, self._pc = self._pc, None
        self._channel = None
        self._agent_mid = None
        self.data_channel_open.clear()
        self.client_joined.clear()
        if socket is not None:
            if abrupt:
                socket.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await socket.close()
        if pc is not None:
            await pc.close()
