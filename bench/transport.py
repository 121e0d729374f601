"""The websocket transport vs the WebRTC transport, side by side, plain and impaired.

voicedesk's real client (``Conversation`` + the PortAudio ``AudioEngine`` on the
PulseAudio null sinks of ``scripts/pulse-null-sinks``) talks to local stand-ins, once
per transport and network condition, in one run:

- websocket: the local agent (``LocalAgentServer``, ``VoiceKind.SINE``), which sends
  ``pcm_16000`` in 250 ms chunks, paced at 1x real time (as a voice produced live) and
  at 4x (its default: the reply sent ahead of real time, as a fast TTS does);
- WebRTC: ``tests/webrtc/standin.py``'s LiveKit server stand-in, whose agent track
  carries the same voice (Opus through aiortc, at ``--opus-kbps``, 32 by default: the
  rate libwebrtc, and so our own microphone track, uses for mono voice), with the
  conversation token from the local agent.

Network. The bench builds two network namespaces of its own (client; agent side) and
joins them with a link of its own: a TUN device in each, and this process between
them, forwarding each IP packet from one to the other. The link is where the
impairment is applied, per packet and each way, as ``tc netem loss 5% delay 40ms 20ms``
would (independent 5 % loss, a delay drawn uniformly from 20-60 ms, so packets
reorder; ``--keep-order`` delays without reordering): this machine's kernel has no
``netem``. Every byte between the client and the
stand-ins (signalling, token, media) crosses that link; the PulseAudio socket is a
file. The namespaces go when the bench ends. Each call connects on the plain link; the
condition is applied once it is connected.

Figures, per transport and condition (timestamps: ``time.monotonic()``, one clock for
every process):

- mic-to-agent: a 250 ms 1 kHz burst is played into the microphone's sink, and heard
  on its monitor (a 5 ms block's arrival) -> the first loud audio reaches the agent
  side: the websocket chunk that carries it arrives at the local agent; for WebRTC,
  the first RTP packet whose payload decodes loud arrives at the stand-in ("wire": what
  an SFU gets), and its audio comes out of aiortc's jitter buffer and decoder
  ("decoded": a cost of the stand-in, whose buffer waits for 4 packets; a real agent
  has a jitter buffer of its own, adaptive);
- agent-to-speaker: the agent hands the first frame of a 0.5 s tone to its transport
  (the local agent's ``first_audio_sent_at``; the stand-in's track taking the first
  loud frame of its queue) -> the first loud 5 ms block on ``speaker.monitor``;
- audible gaps: the agent speaks one steady 1 kHz tone for ``--seconds``; at the
  speaker, from its first to its last loud block, every run of 1 ms windows (one
  period of the tone) quieter than a tenth of the median level (-20 dB), lasting
  60 ms or more, is a gap; per minute of the tone sent;
- bytes/s: IP bytes each way on the link (headers, ACKs, retransmissions, RTCP,
  signalling: all of it), counted where the packets enter the link (before loss),
  during the tone;
- CPU: % of one core used by the client process (everything it runs: the
  conversation, the audio engine, the LiveKit SDK and its libwebrtc threads) during
  the tone, and the same per thread name (``/proc/<pid>/task``). The stand-ins run in
  the agent side's process and the link in the bench's own: neither is counted, nor is
  the sound server's.

Where the time goes, measured the same way for both transports inside the client:
"of which until our chunk goes to the transport" (the burst's first loud chunk handed
to ``Conversation.on_mic_audio``) and "of which until it reaches our playback queue"
(the agent's first loud audio handed to ``AudioEngine.play``). For WebRTC, the SDK's
own statistics give libwebrtc's jitter buffer (NetEq) over the call (mean delay,
target, minimum) and the agent side's sending regularity (p95 lateness of its 20 ms
frames: jitter the client's NetEq then has to absorb). ``--sdk-defaults`` adds a
WebRTC case whose media bridge uses the SDK's defaults (a 1 s audio-source queue, 10 ms
frames from the agent's track): the state before tuning, in the same run.

Medians over ``--trials`` for the latencies (range beside them).

Run: ``eval "$(scripts/pulse-null-sinks)"; .venv/bin/python bench/transport.py``
(as root; ~3.5 min with the defaults; ``--seconds``, ``--trials``, ``--only``,
``--conditions`` to shorten).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import functools
import json
import os
import platform
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.audio.pulse import SinkRecorder, play_into, pulse_ready, tone  # noqa: E402

SCRIPT = Path(__file__).resolve()
RATE = 48000
LOUD = 1500  # int16 peak that counts as "heard" (the tones peak at ~9800)
TONE_HZ = 1000.0
TONE_LEVEL = 0.3
GAP_MS = 60  # a dropout at least this long is an audible gap
QUIET_FRACTION = 0.1  # quieter than this share of the tone's median level: silence
SINE_MS_PER_CHAR = 20.0  # the local agent's SINE voice: 20 ms of tone per character

#: The link between the namespaces: the agent side holds .1, the client .2.
AGENT_ADDRESS = "10.78.0.1"
CLIENT_ADDRESS = "10.78.0.2"
TUN_NAMES = ("vdbench-cli", "vdbench-agt")  # client's end, agent's end
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


# ------------------------------------------------------------------ the link


@dataclass(frozen=True)
class Impairment:
    loss: float = 0.0  # share of packets dropped, each way
    delay_ms: float = 0.0
    jitter_ms: float = 0.0  # the delay is uniform in delay_ms +- jitter_ms
    keep_order: bool = False  # no packet overtakes another (netem reorders)

    def describe(self) -> str:
        if not (self.loss or self.delay_ms or self.jitter_ms):
            return "plain"
        order = "order kept" if self.keep_order else "packets reorder, as with netem"
        return (
            f"{100 * self.loss:g} % loss, {self.delay_ms:g} ms +- {self.jitter_ms:g} ms "
            f"delay each way ({order})"
        )


class Link:
    """Forwards IP packets between the two TUN devices, impaired as told."""

    def __init__(self, client_fd: int, agent_fd: int, seed: int) -> None:
        self._fds = {"up": (client_fd, agent_fd), "down": (agent_fd, client_fd)}
        self._random = random.Random(seed)
        self.impairment = Impairment()
        self._last_due = {"up": 0.0, "down": 0.0}
        self.counts: dict[str, int] = {
            f"{d}_{k}": 0 for d in ("up", "down") for k in ("bytes", "packets", "dropped")
        }

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        for direction, (source, _) in self._fds.items():
            os.set_blocking(source, False)
            loop.add_reader(source, self._forward, direction, loop)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        for source, _ in self._fds.values():
            loop.remove_reader(source)

    def _forward(self, direction: str, loop: asyncio.AbstractEventLoop) -> None:
        source, target = self._fds[direction]
        imp = self.impairment
        while True:
            try:
                packet = os.read(source, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            self.counts[f"{direction}_bytes"] += len(packet)
            self.counts[f"{direction}_packets"] += 1
            if imp.loss and self._random.random() < imp.loss:
                self.counts[f"{direction}_dropped"] += 1
                continue
            now = loop.time()
            delay_s = (imp.delay_ms + self._random.uniform(-imp.jitter_ms, imp.jitter_ms)) / 1000
            if imp.keep_order:
                delay_s = max(delay_s, self._last_due[direction] - now)
                self._last_due[direction] = now + delay_s
            if delay_s <= 0:
                _write(target, packet)
            else:
                loop.call_at(now + delay_s, _write, target, packet)


def _write(fd: int, packet: bytes) -> None:
    with contextlib.suppress(OSError):  # a full queue drops the packet, as a NIC would
        os.write(fd, packet)


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _ip() -> str:
    found = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise SystemExit("iproute2's 'ip' is needed (apt-get install iproute2)")
    return found


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def bench_network() -> Iterator[tuple[str, str, int, int]]:
    """Two fresh namespaces (client, agent side) joined by a TUN device in each;
    yields their names and the TUN devices' file descriptors. All removed at the end."""
    from tests.webrtc.netns import VETH_NAMES, network_namespace

    ip = _ip()
    fds: list[int] = []
    with network_namespace() as client_ns, network_namespace() as agent_ns:
        try:
            for ns, tun, address in (
                (client_ns.name, TUN_NAMES[0], CLIENT_ADDRESS),
                (agent_ns.name, TUN_NAMES[1], AGENT_ADDRESS),
            ):
                # The helper's veth pair would be a second address for ICE, one the other
                # namespace cannot reach: only the link stays.
                _run(ip, "-n", ns, "link", "del", VETH_NAMES[0])
                fds.append(_open_tun(tun))  # made here, moved at once, down and bare
                _run(ip, "link", "set", tun, "netns", ns)
                _run(ip, "-n", ns, "addr", "add", f"{address}/24", "dev", tun)
                _run(ip, "-n", ns, "link", "set", tun, "up")
            yield client_ns.name, agent_ns.name, fds[0], fds[1]
        finally:
            for fd in fds:
                os.close(fd)


async def _serve_control(link: Link, path: str) -> asyncio.Server:
    """One JSON line in (``{"set": {...}}`` or ``{}``), the link's counters out."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            if "set" in request:
                link.impairment = Impairment(**request["set"])
            writer.write((json.dumps(link.counts) + "\n").encode())
            await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(handle, path)


class LinkControl:
    """The agent side's handle on the link (through a unix socket: a file, which every
    namespace sees)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def _ask(self, request: dict[str, Any]) -> dict[str, int]:
        if self._streams is None:
            self._streams = await asyncio.open_unix_connection(self._path)
        reader, writer = self._streams
        writer.write((json.dumps(request) + "\n").encode())
        await writer.drain()
        counts: dict[str, int] = json.loads(await reader.readline())
        return counts

    async def impair(self, impairment: Impairment) -> None:
        await self._ask({"set": asdict(impairment)})

    async def counts(self) -> dict[str, int]:
        return await self._ask({})


# ------------------------------------------------------------------ the client process


def client_main(config: dict[str, Any]) -> int:
    """``--client``: voicedesk's conversation with the real audio engine, in the client
    namespace. Prints one JSON line when connected, waits for a line on stdin, ends the
    call and prints the engine's glitch counts."""
    return asyncio.run(_client(config))


async def _client(config: dict[str, Any]) -> int:
    from voicedesk.audio.engine import AudioEngine
    from voicedesk.audio.settings import AudioSettings
    from voicedesk.session import Conversation, ConversationOptions, endpoints
    from voicedesk.session import conversation as conversation_module

    # The client takes plain http/ws only from this computer; here the agent side is
    # across the bench's link, in the other namespace. Only that URL check is widened.
    loopback = endpoints.is_loopback_host

    def loopback_or_agent(host: str | None) -> bool:
        return host == AGENT_ADDRESS or loopback(host)

    for module in (endpoints, conversation_module):
        setattr(module, "is_loopback_host", loopback_or_agent)  # noqa: B010

    if config.get("sdk_defaults"):
        _use_sdk_defaults()
    engine = AudioEngine(AudioSettings())
    _report_onsets(engine)
    conversation = Conversation(
        ConversationOptions(
            agent_id="bench",
            server_url=config["server_url"],
            transport=config["transport"],
            livekit_url=config.get("livekit_url"),
        ),
        audio=engine,
    )
    _report_mic_onsets(conversation)
    try:
        ok = await conversation.start()
        print(json.dumps({"connected": ok and not conversation.is_text_only}), flush=True)
        if ok:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        glitches: dict[str, Any] = {
            "underruns": engine.speaker_underruns,
            "overflows": engine.microphone_overflows,
        }
        room = getattr(getattr(conversation, "_transport", None), "_room", None)
        if room is not None:
            glitches["jitter_buffer"] = await _jitter_buffer(room)
    finally:
        await conversation.end()
        await engine.close()
    print(json.dumps(glitches), flush=True)
    return 0


def _use_sdk_defaults() -> None:
    """The media bridge as it was before its tuning, for a before/after in one run: the
    SDK's 1 s audio-source queue (drained by its 10 ms ticker) and 10 ms frames from the
    agent's track."""
    from livekit import rtc

    from voicedesk.session import livekit

    class QueuedSource(rtc.AudioSource):
        def __init__(self, sample_rate: int, num_channels: int, **_: Any) -> None:
            super().__init__(sample_rate, num_channels, queue_size_ms=1000)

    setattr(rtc, "AudioSource", QueuedSource)  # noqa: B010
    setattr(livekit, "AGENT_FRAME_MS", None)  # noqa: B010


async def _jitter_buffer(room: Any) -> dict[str, float]:
    """libwebrtc's jitter buffer (NetEq) on the agent's track over the call, from the
    SDK's stats: mean delay, target and minimum, ms per emitted sample."""
    stats = await room.get_rtc_stats()
    for entry in [*stats.subscriber_stats, *stats.publisher_stats]:
        if entry.WhichOneof("stats") != "inbound_rtp":
            continue
        inbound = entry.inbound_rtp.inbound
        emitted = inbound.jitter_buffer_emitted_count
        if entry.inbound_rtp.stream.kind == "audio" and emitted:
            return {
                "delay_ms": 1000 * inbound.jitter_buffer_delay / emitted,
                "target_ms": 1000 * inbound.jitter_buffer_target_delay / emitted,
                "minimum_ms": 1000 * inbound.jitter_buffer_minimum_delay / emitted,
                "concealed_ms": 1000 * inbound.concealed_samples / 48000,
            }
    return {}


class _Onsets:
    """Prints ``{"onset": where, "at": t}`` when audio turns loud after a quiet while:
    the split of a latency into the transport's part and ours, the same for both."""

    def __init__(self, where: str, quiet_s: float = 0.3) -> None:
        self.where = where
        self.quiet_s = quiet_s
        self.last_loud = 0.0

    def see(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2")
        if not samples.size or int(np.abs(samples.astype(np.int32)).max()) <= LOUD:
            return
        now = time.monotonic()
        if now - self.last_loud > self.quiet_s:
            print(json.dumps({"onset": self.where, "at": now}), flush=True)
        self.last_loud = now


def _report_onsets(engine: Any) -> None:
    """The agent's audio as it reaches our playback queue (either transport)."""
    play, onsets = engine.play, _Onsets("play")

    def timed_play(audio: bytes) -> None:
        onsets.see(audio)
        play(audio)

    engine.play = timed_play


def _report_mic_onsets(conversation: Any) -> None:
    """The microphone's chunk as it is handed to the transport (either transport)."""
    on_mic, onsets = conversation.on_mic_audio, _Onsets("mic")

    def timed_mic(audio: bytes) -> None:
        onsets.see(audio)
        on_mic(audio)

    conversation.on_mic_audio = timed_mic


class Client:
    """The client process, started in the client namespace."""

    def __init__(self, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        self.process = process
        self.log = log
        self.ps = psutil.Process(process.pid)  # ip netns exec execs: this is python
        self.onsets: dict[str, list[float]] = {"play": [], "mic": []}

    @classmethod
    async def start(cls, namespace: str, config: dict[str, Any], log: IO[bytes]) -> Client:
        process = await asyncio.create_subprocess_exec(
            *[_ip(), "netns", "exec", namespace, sys.executable, str(SCRIPT)],
            "--client",
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
        )
        client = cls(process, log)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 45)
        if not line or not json.loads(line).get("connected"):
            await client.stop()
            raise RuntimeError(f"the client did not connect: {client.log_tail()}")
        return client

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def thread_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per thread name (``/proc/<pid>/task/*/comm``; threads of one name,
        e.g. a pool's, summed)."""
        ticks = os.sysconf("SC_CLK_TCK")
        by_name: dict[str, float] = {}
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                name = (task / "comm").read_text().strip()
                # The fields after the name: utime and stime are the 12th and 13th.
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                seconds = (int(fields[11]) + int(fields[12])) / ticks
                by_name[name] = by_name.get(name, 0.0) + seconds
        return by_name

    async def stop(self) -> dict[str, Any]:
        process = self.process
        glitches: dict[str, Any] = {}
        try:
            if process.returncode is None and process.stdin is not None:
                process.stdin.write(b"stop\n")
                await process.stdin.drain()
            assert process.stdout is not None
            async with asyncio.timeout(20):
                while line := await process.stdout.readline():
                    with contextlib.suppress(ValueError):
                        message = json.loads(line)
                        if "onset" in message:
                            self.onsets[message["onset"]].append(message["at"])
                        else:
                            glitches = message
                await process.wait()
        except (TimeoutError, OSError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        return glitches

    def log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-1500:]


# ------------------------------------------------------------------ the agent side


class AgentSide(Protocol):
    name: str

    def client_config(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def connected(self) -> None: ...

    async def speak(self, seconds: float) -> float:
        """Speak a steady tone; returns when its first frame went to the transport."""
        ...

    def mic_arrival(self, since: float) -> tuple[float | None, float | None]:
        """(on the wire, decoded): when the first loud microphone audio since ``since``
        reached the agent side."""
        ...

    async def stop(self) -> None: ...


class WebsocketAgent:
    def __init__(self, speedup: float, chunk_ms: int) -> None:
        from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind

        self.name = f"websocket {speedup:g}x"
        self.server = LocalAgentServer(
            AgentConfig(
                voice=VoiceKind.SINE,
                speak_first_message=False,
                ping_interval_s=None,
                barge_in_level=2.0,  # the bursts never interrupt it
                chunk_ms=chunk_ms,
                send_speedup=speedup,
            ),
            host=AGENT_ADDRESS,
        )
        self.session: Any = None

    def client_config(self) -> dict[str, Any]:
        return {"transport": "websocket", "server_url": self.server.http_url}

    async def start(self) -> None:
        await self.server.start()

    async def connected(self) -> None:
        self.session = await self.server.next_session(timeout=15, after=0)

    async def speak(self, seconds: float) -> float:
        session = self.session
        event_id = await session.say("a" * round(seconds * 1000 / SINE_MS_PER_CHAR))
        await session.wait_for(lambda s: event_id in s.first_audio_sent_at, 10)
        return float(session.first_audio_sent_at[event_id])

    def mic_arrival(self, since: float) -> tuple[float | None, float | None]:
        from voicedesk.audio.codec import decode

        session = self.session
        start = 0
        for at, end in list(session.audio_arrivals):
            if at >= since:
                chunk = decode(bytes(session.audio_in[start:end]), session.input_format)
                if chunk.size and int(np.abs(chunk.astype(np.int32)).max()) > LOUD:
                    return at, at
            start = end
        return None, None

    async def stop(self) -> None:
        await self.server.stop()


#: (arrival, peak of its decoded audio) of every RTP packet the stand-in received.
RTP_ARRIVALS: list[tuple[float, int]] = []


def _patch_aiortc(opus_kbps: int) -> None:
    """Time RTP packets as they reach the stand-in, before its jitter buffer, with the
    peak of their audio (each payload decoded on the spot by a decoder of our own), and
    set the bit rate of the agent's Opus encoder."""
    import av
    from aiortc.codecs.opus import OpusEncoder
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    handle = RTCRtpReceiver._handle_rtp_packet
    decoders: dict[int, Any] = {}

    async def timed_handle(self: RTCRtpReceiver, packet: Any, arrival_time_ms: int) -> None:
        at = time.monotonic()
        decoder = decoders.get(id(self))
        if decoder is None:
            decoder = decoders[id(self)] = av.CodecContext.create("libopus", "r")
        peak = 0
        if packet.payload:
            with contextlib.suppress(Exception):  # not Opus, or undecodable: no sound
                for frame in decoder.decode(av.Packet(packet.payload)):
                    samples = frame.to_ndarray()
                    if samples.dtype.kind == "f":
                        samples = samples * 32768.0
                    peak = max(peak, int(np.abs(samples).max()))
        RTP_ARRIVALS.append((at, peak))
        await handle(self, packet, arrival_time_ms)

    setattr(RTCRtpReceiver, "_handle_rtp_packet", timed_handle)  # noqa: B010

    init = OpusEncoder.__init__

    def init_at_rate(self: OpusEncoder) -> None:
        init(self)
        self.codec.bit_rate = opus_kbps * 1000

    setattr(OpusEncoder, "__init__", init_at_rate)  # noqa: B010


class WebrtcAgent:
    def __init__(self, sdk_defaults: bool = False) -> None:
        from tests.webrtc.standin import LiveKitStandIn

        from voicedesk.localagent import AgentConfig, LocalAgentServer

        #: The client's media bridge with the SDK's defaults (its state before tuning).
        self.sdk_defaults = sdk_defaults
        self.name = "WebRTC, SDK defaults" if sdk_defaults else "WebRTC"
        self.tokens = LocalAgentServer(AgentConfig(ping_interval_s=None), host=AGENT_ADDRESS)
        self.standin = LiveKitStandIn(room_name="RM_conv_bench0transport", host=AGENT_ADDRESS)
        self._first_loud_frame: float | None = None
        self._first_loud = asyncio.Event()
        #: When each 20 ms frame of the agent's track was taken to be sent.
        self.frame_times: list[float] = []
        self._event_id = 0
        take = self.standin.voice._take_frame

        def timed_take() -> npt.NDArray[np.int16]:
            frame = take()
            self.frame_times.append(time.monotonic())
            if self._first_loud_frame is None and int(np.abs(frame.astype(np.int32)).max()) > LOUD:
                self._first_loud_frame = time.monotonic()
                self._first_loud.set()
            return frame

        setattr(self.standin.voice, "_take_frame", timed_take)  # noqa: B010

    def client_config(self) -> dict[str, Any]:
        return {
            "transport": "webrtc",
            "server_url": self.tokens.http_url,
            "livekit_url": self.standin.url,
            "sdk_defaults": self.sdk_defaults,
        }

    async def start(self) -> None:
        await self.tokens.start()
        await self.standin.start()

    async def connected(self) -> None:
        await asyncio.wait_for(self.standin.data_channel_open.wait(), 15)

    async def speak(self, seconds: float) -> float:
        self._event_id += 1
        message = {
            "type": "agent_response",
            "agent_response_event": {"agent_response": "a tone", "event_id": self._event_id},
        }
        await self.standin.send_data(json.dumps(message).encode())
        self._first_loud_frame = None
        self._first_loud.clear()
        self.standin.play(tone(TONE_HZ, seconds, RATE, level=TONE_LEVEL))
        await asyncio.wait_for(self._first_loud.wait(), 10)
        assert self._first_loud_frame is not None
        return self._first_loud_frame

    def mic_arrival(self, since: float) -> tuple[float | None, float | None]:
        wire = next(
            (at for at, peak in list(RTP_ARRIVALS) if at >= since and peak > LOUD),
            None,
        )
        decoded = next(
            (
                c.received_at
                for c in list(self.standin.microphone)
                if c.received_at >= since
                and c.samples.size
                and int(np.abs(c.samples.astype(np.int32)).max()) > LOUD
            ),
            None,
        )
        return wire, decoded

    async def stop(self) -> None:
        await self.standin.stop()
        await self.tokens.stop()


# ------------------------------------------------------------------ measuring


@dataclass
class Case:
    transport: str
    condition: str
    mic_to_agent_ms: list[float] = field(default_factory=list)
    mic_to_agent_decoded_ms: list[float] = field(default_factory=list)
    agent_to_speaker_ms: list[float] = field(default_factory=list)
    #: The parts: agent -> our playback queue (engine.play); microphone burst -> its
    #: chunk handed to the transport (Conversation.on_mic_audio).
    agent_to_playback_ms: list[float] = field(default_factory=list)
    mic_to_transport_ms: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)  # each gap's length, ms
    tone_s: float = 0.0
    heard_s: float = 0.0
    window_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)  # the link's, during the tone
    cpu_percent: float = float("nan")
    send_jitter_ms: float = float("nan")  # the WebRTC stand-in's sending, during the tone
    #: % of one core per thread name of the client during the tone (the largest first).
    cpu_by_thread: dict[str, float] = field(default_factory=dict)
    glitches: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def gaps_per_minute(self) -> float:
        return len(self.gaps) * 60.0 / self.tone_s if self.tone_s else float("nan")

    def bytes_per_s(self, direction: str) -> float:
        if not self.window_s or not self.counts:
            return float("nan")
        return self.counts[f"{direction}_bytes"] / self.window_s


def dropouts(samples: npt.NDArray[np.int16], rate: int = RATE) -> list[float]:
    """Lengths (ms) of the silences of ``GAP_MS`` or more inside a steady tone."""
    width = rate // 1000  # 1 ms: one period of the 1 kHz tone
    count = samples.size // width
    if count == 0:
        return []
    x = samples[: count * width].astype(np.float64).reshape(count, width)
    level = np.sqrt(np.mean(x * x, axis=1))
    quiet = level < QUIET_FRACTION * float(np.median(level))
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [float(e - s) for s, e in zip(starts, ends, strict=True) if e - s >= GAP_MS]


async def first_loud(recorder: SinkRecorder, since: float, timeout: float = 5) -> float:
    deadline = time.monotonic() + timeout
    while True:
        times = recorder.loud_block_times(LOUD, since=since)
        if times:
            return times[0]
        if time.monotonic() > deadline:
            raise TimeoutError("nothing was heard")
        await asyncio.sleep(0.003)


async def mic_arrival(agent: AgentSide, since: float, which: int, timeout: float) -> float:
    """Wait for :meth:`AgentSide.mic_arrival`'s figure number ``which``."""
    deadline = time.monotonic() + timeout
    while (value := agent.mic_arrival(since)[which]) is None:
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.003)
    return value


async def quiet_after(recorder: SinkRecorder, since: float, quiet_s: float, timeout: float) -> None:
    """Wait until the sink has been quiet for ``quiet_s`` (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loud = recorder.loud_block_times(LOUD, since=since)
        if time.monotonic() - (loud[-1] if loud else since) >= quiet_s:
            return
        await asyncio.sleep(0.05)


@dataclass
class Rig:
    link: LinkControl
    client_namespace: str
    speaker: SinkRecorder
    microphone: SinkRecorder
    args: argparse.Namespace
    logs: Path


def log(message: str) -> None:
    print(f"[transport bench] {message}", file=sys.stderr, flush=True)


async def measure(
    rig: Rig, agent: AgentSide, condition: str, impairment: Impairment, case: Case
) -> None:
    args = rig.args
    await agent.start()
    log_path = rig.logs / f"{agent.name.replace(' ', '-')}-{condition}.log"
    log_file = await asyncio.to_thread(log_path.open, "w+b")
    with log_file:
        client = await Client.start(rig.client_namespace, agent.client_config(), log_file)
        try:
            await agent.connected()
            await rig.link.impair(impairment)
            await asyncio.sleep(1.0)
            # Warm-up: the streams and the jitter buffers settle on their first sound.
            sent = await agent.speak(1.0)
            await first_loud(rig.speaker, sent, 10)
            await asyncio.sleep(1.8)

            spoken: list[float] = []  # when each trial's agent tone / mic burst began
            bursts: list[float] = []
            for _ in range(args.trials):
                sent = await agent.speak(0.5)
                heard = await first_loud(rig.speaker, sent, 10)
                case.agent_to_speaker_ms.append(1000 * (heard - sent))
                spoken.append(sent)
                await asyncio.sleep(1.0)

                player = play_into(tone(TONE_HZ, 0.25, RATE, level=TONE_LEVEL))
                played = await first_loud(rig.microphone, player.started, 5)
                bursts.append(played)
                since = played - 0.03
                wire = await mic_arrival(agent, since, 0, 10)
                decoded = await mic_arrival(agent, since, 1, 10)
                case.mic_to_agent_ms.append(1000 * (wire - played))
                case.mic_to_agent_decoded_ms.append(1000 * (decoded - played))
                await asyncio.to_thread(player.wait, 5)
                await asyncio.sleep(0.5)

            # The steady tone: gaps, bytes and CPU.
            counts_before, cpu_before = await rig.link.counts(), client.cpu_seconds()
            threads_before = client.thread_cpu_seconds()
            window_start = time.monotonic()
            sent = await agent.speak(args.seconds)
            await asyncio.sleep(max(0.0, window_start + args.seconds - time.monotonic()))
            counts_after, cpu_after = await rig.link.counts(), client.cpu_seconds()
            case.send_jitter_ms = _send_jitter(agent, window_start)
            case.window_s = time.monotonic() - window_start
            case.counts = {k: counts_after[k] - counts_before[k] for k in counts_after}
            case.cpu_percent = 100 * (cpu_after - cpu_before) / case.window_s
            threads_after = client.thread_cpu_seconds()
            used = {
                name: 100 * (seconds - threads_before.get(name, 0.0)) / case.window_s
                for name, seconds in threads_after.items()
            }
            case.cpu_by_thread = dict(sorted(used.items(), key=lambda item: -item[1]))
            await quiet_after(rig.speaker, sent, 0.5, 15)
            loud = rig.speaker.loud_block_times(LOUD, since=sent)
            if loud:
                case.heard_s = loud[-1] - loud[0]
                case.gaps = dropouts(rig.speaker.audio(loud[0], loud[-1]))
            case.tone_s = args.seconds
        except Exception:
            log(f"client log ({log_path}):\n{client.log_tail()}")
            raise
        finally:
            await rig.link.impair(Impairment())
            case.glitches = await client.stop()
            await agent.stop()
            case.agent_to_playback_ms = _onset_delays(spoken, client.onsets["play"])
            case.mic_to_transport_ms = _onset_delays(bursts, client.onsets["mic"])


def _send_jitter(agent: AgentSide, since: float) -> float:
    """How late the stand-in's 20 ms frames left, at worst for 1 in 20 (p95 of the lateness
    against a steady 20 ms clock, ms); NaN for the websocket."""
    times = np.array([t for t in getattr(agent, "frame_times", []) if t >= since])
    if times.size < 10:
        return float("nan")
    grid = times[0] + 0.02 * np.arange(times.size)
    lateness = (times - grid) - float(np.min(times - grid))
    return float(1000 * np.percentile(lateness, 95))


def _onset_delays(starts: list[float], onsets: list[float]) -> list[float]:
    """ms from each start to the first onset after it (within a second)."""
    delays = []
    for start in starts:
        after = [at for at in onsets if start <= at < start + 1.0]
        if after:
            delays.append(1000 * (after[0] - start))
    return delays


async def inside(args: argparse.Namespace) -> dict[str, Any]:
    """``--inside``: the agent side, in its namespace; runs every case."""
    _patch_aiortc(args.opus_kbps)
    impaired = Impairment(args.loss / 100, args.delay_ms, args.jitter_ms, args.keep_order)
    conditions = [("plain", Impairment()), ("impaired", impaired)]
    conditions = [c for c in conditions if c[0] in args.conditions]
    factories: list[Callable[[], AgentSide]] = []
    if args.only in (None, "websocket"):
        factories += [
            functools.partial(WebsocketAgent, speedup, args.ws_chunk_ms)
            for speedup in args.ws_speedup
        ]
    if args.only in (None, "webrtc"):
        factories.append(WebrtcAgent)
        if args.sdk_defaults:
            factories.append(functools.partial(WebrtcAgent, True))
    rig = Rig(
        LinkControl(args.control),
        args.client_netns,
        SinkRecorder("speaker"),
        SinkRecorder("micsink"),  # when the burst is really "in the room"
        args,
        Path(tempfile.mkdtemp(prefix="voicedesk-transport-bench-")),
    )
    cases: list[Case] = []
    try:
        for condition, impairment in conditions:
            for factory in factories:
                agent = factory()
                case = Case(agent.name, condition)
                log(f"{agent.name}, {condition}")
                started = time.monotonic()
                try:
                    await measure(rig, agent, condition, impairment, case)
                except Exception as exc:
                    case.error = f"{type(exc).__name__}: {exc}"
                    log(f"{agent.name}, {condition} failed: {case.error}")
                log(f"  done in {time.monotonic() - started:.0f} s")
                cases.append(case)
    finally:
        rig.speaker.stop()
        rig.microphone.stop()
    if not any(c.error for c in cases):
        shutil.rmtree(rig.logs, ignore_errors=True)  # the clients' logs, kept on failure
    return {
        "cases": [asdict(c) for c in cases],
        "impaired": impaired.describe(),
    }


async def outside(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Build the network, forward the link, run the agent side in its namespace."""
    with bench_network() as (client_ns, agent_ns, client_fd, agent_fd):
        loop = asyncio.get_running_loop()
        link = Link(client_fd, agent_fd, args.seed)
        link.start(loop)
        with tempfile.TemporaryDirectory(prefix="voicedesk-link-") as tmp:
            control = os.path.join(tmp, "control")
            server = await _serve_control(link, control)
            try:
                process = await asyncio.create_subprocess_exec(
                    *[_ip(), "netns", "exec", agent_ns, sys.executable, str(SCRIPT), *argv],
                    "--inside",
                    "--client-netns",
                    client_ns,
                    "--control",
                    control,
                    stdout=asyncio.subprocess.PIPE,
                    cwd=ROOT,
                )
                out, _ = await process.communicate()
            finally:
                server.close()
                link.stop(loop)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise SystemExit(f"the agent side failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# ------------------------------------------------------------------ report


def _median(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def _kb(value: float) -> str:
    return "n/a" if value != value else f"{value / 1000:.1f}"


def report(result: dict[str, Any], args: argparse.Namespace, elapsed_s: float) -> str:
    cases = [Case(**c) for c in result["cases"]]
    label = {"plain": "plain", "impaired": "loss+jitter"}
    heads = [f"{c.transport}, {label[c.condition]}" for c in cases]

    def cells(render: Callable[[Case], str]) -> str:
        return " | ".join("failed" if c.error else render(c) for c in cases)

    rows: list[tuple[str, Callable[[Case], str]]] = [
        ("mic-to-agent, ms: on the wire (median, range)", lambda c: _median(c.mic_to_agent_ms)),
        (
            "- of which until our chunk goes to the transport",
            lambda c: _median(c.mic_to_transport_ms),
        ),
        (
            "mic-to-agent, ms: decoded by the agent side",
            lambda c: _median(c.mic_to_agent_decoded_ms),
        ),
        ("agent-to-speaker, ms", lambda c: _median(c.agent_to_speaker_ms)),
        (
            "- of which until it reaches our playback queue",
            lambda c: _median(c.agent_to_playback_ms),
        ),
        (f"audible gaps >= {GAP_MS} ms, per minute", lambda c: f"{c.gaps_per_minute:.1f}"),
        (
            "- silent ms per minute / longest gap, ms",
            lambda c: (
                f"{sum(c.gaps) * 60 / c.tone_s:.0f} / {max(c.gaps, default=0):.0f}"
                if c.tone_s
                else "n/a"
            ),
        ),
        ("- tone heard for, s (sent: --seconds)", lambda c: f"{c.heard_s:.2f}"),
        ("kB/s agent -> client (IP, link)", lambda c: _kb(c.bytes_per_s("down"))),
        ("kB/s client -> agent (IP, link)", lambda c: _kb(c.bytes_per_s("up"))),
        (
            "kB/s total, both ways",
            lambda c: _kb(c.bytes_per_s("down") + c.bytes_per_s("up")),
        ),
        ("packets dropped by the link, down / up", lambda c: _dropped(c)),
        ("CPU, % of one core (client process)", lambda c: f"{c.cpu_percent:.1f}"),
        (
            "- the agent side's sending: p95 lateness of its 20 ms frames, ms",
            lambda c: "n/a" if c.send_jitter_ms != c.send_jitter_ms else f"{c.send_jitter_ms:.1f}",
        ),
        (
            "- jitter buffer (NetEq) over the call, ms: mean delay / target / minimum",
            lambda c: _jitter(c.glitches.get("jitter_buffer")),
        ),
        (
            "speaker underruns / mic overflows",
            lambda c: f"{c.glitches.get('underruns', '?')} / {c.glitches.get('overflows', '?')}",
        ),
    ]
    lines = [
        f"| figure | {' | '.join(heads)} |",
        "|---" * (len(cases) + 1) + "|",
    ]
    lines += [f"| {name} | {cells(render)} |" for name, render in rows]
    lines += ["", *targets(cases, args)]
    cpu = platform.processor() or platform.machine()
    lines += [
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}: {psutil.cpu_count()} cores "
        f"({cpu}), Linux {platform.release()}, Python {platform.python_version()}; "
        f"PulseAudio null sinks. loss+jitter = {result['impaired']}, on the bench's "
        f"userspace link. Tone {args.seconds:g} s, {args.trials} latency trials; websocket "
        f"pcm_16000 in {args.ws_chunk_ms} ms chunks, Nx = sent N times faster than real "
        f"time; WebRTC agent voice Opus {args.opus_kbps} kbit/s. Whole run "
        f"{elapsed_s / 60:.1f} min.",
    ]
    lines += ["", "Client CPU by thread (% of one core during the tone; threads above 0.5 %):"]
    for case in cases:
        busy = [f"{name} {share:.1f}" for name, share in case.cpu_by_thread.items() if share >= 0.5]
        lines.append(f"- {case.transport}, {label[case.condition]}: {', '.join(busy) or 'n/a'}")
    for case in cases:
        if case.error:
            lines.append(f"{case.transport}, {case.condition}: {case.error}")
    return "\n".join(lines)


def _jitter(figures: Any) -> str:
    if not figures:
        return "n/a"
    return f"{figures['delay_ms']:.0f} / {figures['target_ms']:.0f} / {figures['minimum_ms']:.0f}"


def _dropped(case: Case) -> str:
    counts = case.counts
    if not counts:
        return "n/a"
    return (
        f"{counts['down_dropped']}/{counts['down_packets']} / "
        f"{counts['up_dropped']}/{counts['up_packets']}"
    )


def targets(cases: list[Case], args: argparse.Namespace) -> list[str]:
    """The issue's targets: WebRTC against the first websocket variant."""
    ws_name = f"websocket {args.ws_speedup[0]:g}x"

    def find(transport: str, condition: str) -> Case | None:
        return next(
            (
                c
                for c in cases
                if c.transport == transport and c.condition == condition and not c.error
            ),
            None,
        )

    lines = [
        f"| target (WebRTC vs {ws_name}) | websocket | WebRTC | met? |",
        "|---|---|---|---|",
    ]

    def add(
        name: str, ws: float | None, rtc: float | None, ok: Callable[[float, float], bool]
    ) -> None:
        if ws is None or rtc is None or ws != ws or rtc != rtc:
            lines.append(f"| {name} | n/a | n/a | n/a |")
            return
        lines.append(f"| {name} | {ws:.1f} | {rtc:.1f} | {'yes' if ok(ws, rtc) else 'NO'} |")

    for condition, words in (("impaired", "loss+jitter"), ("plain", "plain")):
        if condition not in args.conditions:
            continue
        ws, rtc = find(ws_name, condition), find("WebRTC", condition)
        if condition == "impaired":
            g_ws = ws.gaps_per_minute if ws else None
            g_rtc = rtc.gaps_per_minute if rtc else None
            add(
                "audible gaps per minute, loss+jitter: WebRTC <= 1/5",
                g_ws,
                g_rtc,
                lambda a, b: b * 5 <= a,
            )
        if condition == "plain":
            for what, attr in (
                ("mic-to-agent (wire)", "mic_to_agent_ms"),
                ("agent-to-speaker", "agent_to_speaker_ms"),
            ):
                a = statistics.median(getattr(ws, attr)) if ws and getattr(ws, attr) else None
                b = statistics.median(getattr(rtc, attr)) if rtc and getattr(rtc, attr) else None
                add(
                    f"{what}, ms, plain: WebRTC <= websocket + 20",
                    a,
                    b,
                    lambda a, b: b <= a + 20,
                )
        for direction, what in (("down", "agent -> client"), ("up", "client -> agent")):
            a = ws.bytes_per_s(direction) / 1000 if ws else None
            b = rtc.bytes_per_s(direction) / 1000 if rtc else None
            add(
                f"kB/s {what}, {words}: WebRTC <= 1/5",
                a,
                b,
                lambda a, b: b * 5 <= a,
            )
        a = ws.cpu_percent if ws else None
        b = rtc.cpu_percent if rtc else None
        add(
            f"CPU, % of one core, {words}: WebRTC <= websocket + 5",
            a,
            b,
            lambda a, b: b <= a + 5,
        )
    return lines


# ------------------------------------------------------------------ main


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="the steady tone, s")
    parser.add_argument("--trials", type=int, default=5, help="latency trials per case")
    parser.add_argument("--only", choices=["websocket", "webrtc"])
    parser.add_argument(
        "--conditions", nargs="+", choices=["plain", "impaired"], default=["plain", "impaired"]
    )
    parser.add_argument(
        "--ws-speedup",
        type=float,
        nargs="+",
        default=[1.0, 4.0],
        help="how much faster than real time the websocket agent sends (the first is the "
        "one the targets compare with)",
    )
    parser.add_argument("--ws-chunk-ms", type=int, default=250)
    parser.add_argument("--opus-kbps", type=int, default=32, help="the agent voice's Opus rate")
    parser.add_argument(
        "--sdk-defaults",
        action="store_true",
        help="also run WebRTC with the SDK's defaults (1 s source queue, 10 ms frames): "
        "the media bridge before its tuning, for comparison",
    )
    parser.add_argument("--loss", type=float, default=5.0, help="percent of packets lost, each way")
    parser.add_argument("--delay-ms", type=float, default=40.0)
    parser.add_argument("--jitter-ms", type=float, default=20.0)
    parser.add_argument(
        "--keep-order", action="store_true", help="jitter without reordering packets"
    )
    parser.add_argument("--seed", type=int, default=1, help="of the link's random losses")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client-netns", help=argparse.SUPPRESS)
    parser.add_argument("--control", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def inner_argv(args: argparse.Namespace) -> list[str]:
    """The measuring flags, for the agent side's process."""
    argv = [
        f"--seconds={args.seconds}",
        f"--trials={args.trials}",
        "--conditions",
        *args.conditions,
        "--ws-speedup",
        *[str(s) for s in args.ws_speedup],
        f"--ws-chunk-ms={args.ws_chunk_ms}",
        f"--opus-kbps={args.opus_kbps}",
        *(["--sdk-defaults"] if args.sdk_defaults else []),
        f"--loss={args.loss}",
        f"--delay-ms={args.delay_ms}",
        f"--jitter-ms={args.jitter_ms}",
        *(["--keep-order"] if args.keep_order else []),
    ]
    return [*argv, f"--only={args.only}"] if args.only else argv


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.client:
        return client_main(json.loads(args.client))
    if args.inside:
        print(json.dumps(asyncio.run(inside(args))), flush=True)
        return 0
    if not pulse_ready():
        print('PulseAudio null sinks are not running: eval "$(scripts/pulse-null-sinks)"')
        return 2
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("Needs root and /dev/net/tun: the bench builds its own network namespaces.")
        return 2
    started = time.monotonic()
    result = asyncio.run(outside(args, inner_argv(args)))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    print(report(result, args, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
