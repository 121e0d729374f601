"""A conversation between the real LiveKit SDK and :class:`LiveKitStandIn`, in one process.

Run it inside a network namespace of its own (WebRTC gathers candidates on every interface)::

    python -m tests.webrtc.run_in_netns conversation

or, already inside one, ``python -m tests.webrtc.scenario conversation``. Scenarios:

- ``conversation``: the client joins, publishes a 440 Hz microphone tone, hears the agent's
  1 kHz tone, data packets go both ways, then the agent leaves;
- ``agent_joins_later``: as ``conversation``, but the room has only the client until the
  agent joins (``participant_connected``) after the microphone is published;
- ``drop``: signalling and media are cut, reconnection refused; the client reports
  ``reconnecting`` at once, then ``disconnected`` after its ten attempts (16 to 30 s);
- ``drop_then_leave``: as ``drop``, but the reconnection is answered with a ``leave``: the
  client reports ``disconnected`` within a second;
- ``end_room``: the server tells the client to leave; the client reports ``disconnected``.

The last line printed is a JSON object of measurements and ``"ok": true|false``; the exit
code is 0 only when every check held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from livekit import rtc

from tests.webrtc.standin import SAMPLE_RATE_HZ, LiveKitStandIn

#: Multiply every wait by this on slow machines (as the other tests do).
TIME_SCALE = float(os.environ.get("VOICEDESK_TEST_TIME_SCALE", "1"))

MICROPHONE_TONE_HZ = 440.0
AGENT_TONE_HZ = 1000.0
#: Half a semitone is plenty: a codec round trip keeps a pure tone's pitch exactly.
FREQUENCY_TOLERANCE_HZ = 15.0


def tone(frequency_hz: float, duration_s: float, amplitude: float = 0.3) -> npt.NDArray[np.int16]:
    """A sine at ``frequency_hz``, int16, 48 kHz mono."""
    t = np.arange(int(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return (np.sin(2 * np.pi * frequency_hz * t) * amplitude * 32767).astype(np.int16)


def dominant_frequency_hz(samples: npt.NDArray[np.int16]) -> float:
    """The strongest frequency in ``samples`` (48 kHz), to within a bin of the FFT."""
    window = samples.astype(np.float64) * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(window))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * SAMPLE_RATE_HZ / samples.size)


def rms(samples: npt.NDArray[np.int16]) -> float:
    if samples.size == 0:
        return 0.0
    as_float = samples.astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(as_float * as_float)))


@dataclass
class ClientSide:
    """What the SDK client saw."""

    room: rtc.Room
    agent_audio: list[npt.NDArray[np.int16]] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)
    agent_track_subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    agent_left: asyncio.Event = field(default_factory=asyncio.Event)
    agent_joined: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    reconnecting: asyncio.Event = field(default_factory=asyncio.Event)
    data_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    disconnect_reason: str = ""


def _attach(room: rtc.Room) -> ClientSide:
    side = ClientSide(room)

    async def read_agent(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE_HZ, num_channels=1)
        try:
            async for event in stream:
                side.agent_audio.append(
                    np.frombuffer(bytes(event.frame.data), dtype=np.int16).copy()
                )
        finally:
            await stream.aclose()

    def on_track_subscribed(
        track: rtc.Track, _pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and "agent" in participant.identity:
            task = asyncio.ensure_future(read_agent(track))
            side.tasks.add(task)
            side.agent_track_subscribed.set()

    def on_data(packet: rtc.DataPacket) -> None:
        side.data.append(packet.data)
        side.data_arrived.set()

    def on_participant_connected(participant: rtc.RemoteParticipant) -> None:
        if "agent" in participant.identity:
            side.agent_joined.set()

    def on_participant_disconnected(participant: rtc.RemoteParticipant) -> None:
        if "agent" in participant.identity:
            side.agent_left.set()

    def on_disconnected(reason: Any) -> None:
        side.disconnect_reason = str(reason)
        side.disconnected.set()

    room.on("track_subscribed", on_track_subscribed)
    room.on("data_received", on_data)
    room.on("participant_connected", on_participant_connected)
    room.on("participant_disconnected", on_participant_disconnected)
    room.on("disconnected", on_disconnected)
    room.on("reconnecting", lambda: side.reconnecting.set())
    return side


async def _feed_microphone(source: rtc.AudioSource, stop: asyncio.Event) -> None:
    samples_per_frame = SAMPLE_RATE_HZ // 100
    signal = tone(MICROPHONE_TONE_HZ, 1.0)
    offset = 0
    while not stop.is_set():
        chunk = np.take(signal, range(offset, offset + samples_per_frame), mode="wrap")
        offset = (offset + samples_per_frame) % signal.size
        frame = rtc.AudioFrame(chunk.tobytes(), SAMPLE_RATE_HZ, 1, samples_per_frame)
        # capture_frame waits while the source's queue is full: it paces us in real time.
        await source.capture_frame(frame)


async def _timed(
    results: dict[str, Any], name: str, step: Callable[[], Awaitable[Any]], timeout_s: float
) -> Any:
    started = time.monotonic()
    try:
        return await asyncio.wait_for(step(), timeout_s * TIME_SCALE)
    finally:
        results[f"{name}_s"] = round(time.monotonic() - started, 3)


async def conversation(results: dict[str, Any], *, agent_joins_later: bool = False) -> bool:
    standin = LiveKitStandIn(agent_in_room=not agent_joins_later)
    await standin.start()
    room = rtc.Room()
    side = _attach(room)
    stop_microphone = asyncio.Event()
    feeder: asyncio.Task[None] | None = None
    try:
        await _timed(results, "connect", lambda: room.connect(standin.url, "test-token"), 10)
        results["room_name"] = room.name
        results["remote_identities"] = sorted(p.identity for p in room.remote_participants.values())

        source = rtc.AudioSource(SAMPLE_RATE_HZ, 1)
        microphone = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await _timed(
            results,
            "publish",
            lambda: room.local_participant.publish_track(microphone, options),
            10,
        )
        feeder = asyncio.ensure_future(_feed_microphone(source, stop_microphone))

        if agent_joins_later:
            results["remote_identities_before_agent"] = results.pop("remote_identities")
            await asyncio.sleep(0.3)
            await standin.agent_join()
            await _timed(results, "agent_joined", side.agent_joined.wait, 10)
            results["remote_identities"] = sorted(
                p.identity for p in room.remote_participants.values()
            )

        await _timed(results, "agent_track", side.agent_track_subscribed.wait, 10)

        # The agent speaks: 1 s of 1 kHz. Count what arrives after a short silence.
        standin.play(tone(AGENT_TONE_HZ, 1.0))

        async def agent_tone_heard() -> npt.NDArray[np.int16]:
            while True:
                received = np.concatenate(side.agent_audio) if side.agent_audio else None
                if received is not None:
                    loud = [c for c in side.agent_audio if rms(c) > 0.05]
                    if sum(c.size for c in loud) >= SAMPLE_RATE_HZ // 2:
                        return np.concatenate(loud)
                await asyncio.sleep(0.05)

        heard = await _timed(results, "agent_tone", agent_tone_heard, 10)
        results["agent_tone_hz"] = round(dominant_frequency_hz(heard), 1)
        results["agent_tone_rms"] = round(rms(heard), 3)

        await _timed(
            results,
            "client_data",
            lambda: room.local_participant.publish_data(b"hello from the client", reliable=True),
            10,
        )
        packet = await _timed(
            results,
            "client_data_received",
            lambda: standin.wait_for_data(lambda p: p.payload == b"hello from the client"),
            10,
        )
        results["client_data_reliable"] = packet.reliable

        await _timed(results, "server_data", lambda: standin.send_data(b'{"type":"ping"}'), 10)
        await _timed(results, "server_data_received", side.data_arrived.wait, 10)
        results["server_data"] = [d.decode() for d in side.data]

        spoken = await _timed(
            results, "microphone", lambda: standin.wait_for_microphone(min_duration_s=0.5), 10
        )
        results["microphone_hz"] = round(dominant_frequency_hz(spoken), 1)
        results["microphone_rms"] = round(rms(spoken), 3)

        await standin.agent_leave()
        await _timed(results, "agent_leave", side.agent_left.wait, 10)

        results["client_candidates"] = standin.client_candidates
        results["server_candidates"] = standin.server_candidates
        results["tokens"] = standin.tokens
        results["standin_errors"] = standin.errors
    finally:
        stop_microphone.set()
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        await _timed(results, "disconnect", room.disconnect, 10)
        for task in side.tasks:
            task.cancel()
        await standin.stop()

    return (
        results.get("room_name") == standin.room_name
        and abs(results["agent_tone_hz"] - AGENT_TONE_HZ) <= FREQUENCY_TOLERANCE_HZ
        and abs(results["microphone_hz"] - MICROPHONE_TONE_HZ) <= FREQUENCY_TOLERANCE_HZ
        and results["server_data"] == ['{"type":"ping"}']
        and results["client_data_reliable"] is True
        and results["tokens"] == ["test-token"]
        and not standin.errors
    )


async def ending(results: dict[str, Any], how: str) -> bool:
    standin = LiveKitStandIn()
    await standin.start()
    room = rtc.Room()
    side = _attach(room)
    try:
        await _timed(results, "connect", lambda: room.connect(standin.url, "test-token"), 10)
        await _timed(results, "agent_track", side.agent_track_subscribed.wait, 10)
        if how == "drop":
            await standin.drop(reconnection="refuse")
        elif how == "drop_then_leave":
            await standin.drop(reconnection="leave")
        else:
            await standin.end_room()
        if how.startswith("drop"):
            await _timed(results, "reconnecting", side.reconnecting.wait, 10)
        # After a plain drop the SDK makes ten jittered attempts: 16 to 30 s.
        await _timed(results, "disconnected", side.disconnected.wait, 40)
        results["disconnect_reason"] = side.disconnect_reason
    finally:
        await _timed(results, "disconnect", room.disconnect, 10)
        for task in side.tasks:
            task.cancel()
        await standin.stop()
    return side.disconnected.is_set() and (not how.startswith("drop") or side.reconnecting.is_set())


async def _main(name: str) -> int:
    results: dict[str, Any] = {"scenario": name}
    started = time.monotonic()
    ok = False
    try:
        if name == "conversation":
            ok = await conversation(results)
        elif name == "agent_joins_later":
            ok = await conversation(results, agent_joins_later=True)
        else:
            ok = await ending(results, name)
    except Exception as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        logging.getLogger(__name__).exception("scenario %s failed", name)
    results["total_s"] = round(time.monotonic() - started, 3)
    results["ok"] = ok
    print(json.dumps(results), flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario",
        choices=["conversation", "agent_joins_later", "drop", "drop_then_leave", "end_room"],
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    return asyncio.run(_main(args.scenario))


if __name__ == "__main__":
    sys.exit(main())
