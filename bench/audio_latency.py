"""Audio latency, barge-in, CPU and echo: voicedesk vs the official SDK's audio.

Both clients talk to the local agent through the same PulseAudio null sinks
(``scripts/pulse-null-sinks``), one after the other, in one run:

- voicedesk: ``Conversation`` + ``AudioEngine`` (echo cancellation on, as shipped);
- SDK: ``elevenlabs.conversational_ai.conversation.Conversation`` (sync) with
  ``DefaultAudioInterface``, as the Raspberry Pi tutorial uses them.

Figures (medians over the trials):

- barge-in residual: ms of agent audio heard on the speaker after the agent sent
  ``interruption`` (the agent speaks in 0.5 s chunks, as in the issue's baseline);
- mic-to-wire: a tone burst is heard on the microphone's sink (its monitor,
  timestamped per 5 ms block) -> the first chunk containing it arrives at the agent;
- first audio: the agent sends the first chunk of a reply (timestamped as it goes
  to the socket, after the agent's own synthesis) -> it is heard;
- CPU: % of one core used by the client while audio streams both ways;
- ERLE: echo return loss enhancement with the speaker looped back into the mic.

Run: ``eval "$(scripts/pulse-null-sinks)"; .venv/bin/python bench/audio_latency.py``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.audio.pulse import SinkRecorder, energy_db, play_into, pulse_ready, tone

from voicedesk.audio.codec import decode
from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind
from voicedesk.localagent.server import AgentSession

T = TypeVar("T")
LOUD = 1500  # int16 peak that counts as "heard"


class AgentThread:
    """The local agent on its own thread and event loop, so its CPU is not the client's."""

    def __init__(self, config: AgentConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = LocalAgentServer(config)
        self.native_id = 0
        self._thread = threading.Thread(target=self._run, name="bench-agent", daemon=True)
        self._thread.start()
        self.call(self.server.start())

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        asyncio.set_event_loop(self.loop)
        # The agent encodes its speech in worker threads: name them so their CPU is
        # not counted as the client's.
        self.loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="test-agent"))
        self.loop.run_forever()

    def call(self, coroutine: Awaitable[T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def session(self, index: int) -> AgentSession:
        return self.call(self.server.next_session(timeout=15, after=index))

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@dataclass
class Figures:
    barge_in_ms: list[float] = field(default_factory=list)
    mic_to_wire_ms: list[float] = field(default_factory=list)
    first_audio_ms: list[float] = field(default_factory=list)
    cpu_percent: float = float("nan")
    cpu_by_thread: dict[str, float] = field(default_factory=dict)
    erle_db: float = float("nan")
    glitches: str = ""  # underruns/overflows PortAudio reported, where the client counts them


# ------------------------------------------------------------------ the two clients


class VoicedeskClient:
    name = "voicedesk"

    def __init__(self, url: str) -> None:
        from voicedesk.audio.engine import AudioEngine
        from voicedesk.audio.settings import AudioSettings
        from voicedesk.session import Conversation, ConversationOptions

        self.loop = asyncio.new_event_loop()
        self.engine = AudioEngine(AudioSettings())
        self.conversation = Conversation(
            ConversationOptions(server_url=url, agent_id="demo", text_only=False),
            audio=self.engine,
        )
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-client")
        self._thread.start()

    def start(self) -> None:
        ok = asyncio.run_coroutine_threadsafe(self.conversation.start(), self.loop).result(30)
        if not ok or self.conversation.is_text_only:
            raise RuntimeError("voicedesk could not start a voice conversation")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.conversation.end(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class SdkClient:
    name = "elevenlabs SDK"

    def __init__(self, url: str) -> None:
        from elevenlabs.client import ElevenLabs
        from elevenlabs.conversational_ai.conversation import (
            Conversation,
            ConversationInitiationData,
        )
        from elevenlabs.conversational_ai.default_audio_interface import DefaultAudioInterface

        self.conversation = Conversation(
            ElevenLabs(api_key="bench", base_url=url),
            "demo",
            requires_auth=False,
            audio_interface=DefaultAudioInterface(),
            config=ConversationInitiationData(dynamic_variables={"platform": "linux"}),
        )

    def start(self) -> None:
        self.conversation.start_session()

    def stop(self) -> None:
        self.conversation.end_session()
        self.conversation.wait_for_session_end()


# ------------------------------------------------------------------ measurements


def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.005)


def first_loud_after(speaker: SinkRecorder, t0: float, timeout: float = 5) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        after = speaker.loud_block_times(LOUD, since=t0)
        if after:
            return after[0]
        time.sleep(0.01)
    raise TimeoutError("nothing heard")


def measure(client_factory: Callable[[str], Any], trials: int) -> Figures:
    figures = Figures()
    agent = AgentThread(
        AgentConfig(
            voice=VoiceKind.SINE,
            speak_first_message=False,
            chunk_ms=500,
            ping_interval_s=None,
            barge_in_level=2.0,  # the agent never reacts to the bursts by itself
        )
    )
    speaker = SinkRecorder("speaker")
    microphone = SinkRecorder("micsink")  # when the burst is really "in the room"
    client = client_factory(agent.server.http_url)
    try:
        client.start()
        session = agent.session(0)
        wait_until(lambda: session.audio_chunks >= 3, 10)
        # Warm-up: the null sink and the streams settle on their first sound.
        agent.call(session.say("warm up " * 10))
        first_loud_after(speaker, time.monotonic() - 1, 8)
        time.sleep(2.5)

        for _ in range(trials):
            # First audio, then barge-in on the same reply.
            time.sleep(0.5)
            event_id = agent.call(session.say("a long answer " * 20))
            wait_until(lambda e=event_id: e in session.first_audio_sent_at, 5)
            sent_at = session.first_audio_sent_at[event_id]
            heard_at = first_loud_after(speaker, sent_at)
            figures.first_audio_ms.append((heard_at - sent_at) * 1000)
            time.sleep(1.2)
            interrupted_at = time.monotonic()
            agent.call(session.interrupt())
            time.sleep(0.8)
            after = speaker.loud_block_times(LOUD, since=interrupted_at)
            figures.barge_in_ms.append((max(after) - interrupted_at) * 1000 if after else 0.0)
            time.sleep(0.5)

            # Mic to wire: a 200 ms burst into the microphone.
            offset = len(session.audio_in)
            player = play_into(tone(1000, 0.2, level=0.3))
            played_at = first_loud_after(microphone, player.started)
            fmt = session.input_format

            def arrived(start: int = offset, fmt: Any = fmt) -> float | None:
                for at, end in list(session.audio_arrivals):
                    if end <= start:
                        continue
                    chunk = decode(bytes(session.audio_in[start:end]), fmt)
                    if chunk.size and int(np.abs(chunk).max()) > LOUD:
                        return at
                return None

            wait_until(lambda: arrived() is not None, 5)
            figures.mic_to_wire_ms.append(((arrived() or 0) - played_at) * 1000)
            player.wait(5)

        # CPU while streaming both ways (agent speaking, user talking), for 8 s.
        process = psutil.Process()
        excluded = {agent.native_id}
        agent.call(session.say("keep talking " * 40))
        first_loud_after(speaker, time.monotonic() - 0.1)
        player = play_into(tone(300, 8.5, level=0.05))
        cpu_before = _client_cpu(process, excluded)
        wall_before = time.monotonic()
        time.sleep(8)
        cpu_after = _client_cpu(process, excluded)
        wall = time.monotonic() - wall_before
        figures.cpu_percent = 100 * (sum(cpu_after.values()) - sum(cpu_before.values())) / wall
        figures.cpu_by_thread = {
            name: 100 * (seconds - cpu_before.get(name, 0.0)) / wall
            for name, seconds in cpu_after.items()
        }
        player.wait(5)
        agent.call(session.interrupt())
        time.sleep(0.5)
    finally:
        engine = getattr(client, "engine", None)
        if engine is not None:
            figures.glitches = (
                f"{engine.speaker_underruns} speaker underruns, "
                f"{engine.microphone_overflows} microphone overflows"
            )
        with contextlib.suppress(Exception):
            client.stop()
        speaker.stop()
        microphone.stop()
        agent.stop()
    figures.erle_db = measure_erle(client_factory)
    return figures


def _client_cpu(process: psutil.Process, excluded: set[int]) -> dict[str, float]:
    """CPU seconds of this process's threads by name, minus the agent's and the test
    players'. Threads Python does not know (PortAudio's, PulseAudio's) go by their id."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
    seconds: dict[str, float] = {}
    for thread in process.threads():
        name = names.get(thread.id, f"native-{thread.id}")
        if thread.id in excluded or name.startswith("test-"):
            continue
        seconds[name] = seconds.get(name, 0.0) + thread.user_time + thread.system_time
    return seconds


def measure_erle(client_factory: Callable[[str], Any]) -> float:
    """Energy picked up by the microphone (the speaker looped back) over energy sent."""
    module = subprocess.run(
        [
            "pactl",
            "load-module",
            "module-loopback",
            "source=speaker.monitor",
            "sink=micsink",
            "latency_msec=40",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    agent = AgentThread(
        AgentConfig(
            voice=VoiceKind.ESPEAK,
            speak_first_message=False,
            ping_interval_s=None,
            barge_in_level=2.0,
        )
    )
    microphone = SinkRecorder("micsink")
    client = client_factory(agent.server.http_url)
    try:
        client.start()
        session = agent.session(0)
        wait_until(lambda: session.audio_chunks >= 3, 10)
        agent.call(
            session.say(
                "This is the agent talking through the laptop speakers, and the microphone "
                "hears it all again a moment later, as it would in a small room. " * 2
            )
        )
        wait_until(lambda: len(microphone.loud_block_times(LOUD)) > 0, 10)
        time.sleep(2.0)
        t0, start = time.monotonic(), len(session.audio_in)
        time.sleep(4.0)
        t1, end = time.monotonic(), len(session.audio_in)
        sent = decode(bytes(session.audio_in[start:end]), session.input_format)
        raw = microphone.audio(t0, t1)
        agent.call(session.interrupt())
    finally:
        with contextlib.suppress(Exception):
            client.stop()
        microphone.stop()
        agent.stop()
        subprocess.run(["pactl", "unload-module", module], check=False)
    return energy_db(raw) - energy_db(sent)


# ------------------------------------------------------------------ report


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "n/a"


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}" if values else ""


def report(results: dict[str, Figures], trials: int) -> str:
    rows = [
        ("barge-in residual, ms (median; range)", "barge_in_ms", "<= 30"),
        ("mic-to-wire, ms", "mic_to_wire_ms", "<= 40"),
        ("first audio, wire-to-speaker, ms", "first_audio_ms", "<= SDK"),
    ]
    names = list(results)
    head = f"| figure | {' | '.join(names)} | target |"
    lines = [head, "|---" * (len(names) + 2) + "|"]
    for label, attr, target in rows:
        cells = [
            f"{median(getattr(results[n], attr))} ({spread(getattr(results[n], attr))})"
            for n in names
        ]
        lines.append(f"| {label} | {' | '.join(cells)} | {target} |")
    lines.append(
        "| CPU, % of one core, streaming both ways | "
        + " | ".join(f"{results[n].cpu_percent:.1f}" for n in names)
        + " | <= 10 |"
    )
    lines.append(
        "| ERLE, dB (speaker looped into the mic) | "
        + " | ".join(f"{results[n].erle_db:.1f}" for n in names)
        + " | >= 20 |"
    )
    cpu = platform.processor() or platform.machine()
    lines.append("")
    lines.append(
        f"{time.strftime('%Y-%m-%d')}, {trials} trials each, {psutil.cpu_count()} cores "
        f"({cpu}), Python {platform.python_version()}, PulseAudio null sinks via ALSA 'pulse'; "
        "agent speaks pcm_16000 in 0.5 s chunks sent 4x faster than real time."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--only", choices=["voicedesk", "sdk"])
    parser.add_argument(
        "--threads", action="store_true", help="also print each client thread's CPU share"
    )
    args = parser.parse_args()
    if not pulse_ready():
        print('PulseAudio null sinks are not running: eval "$(scripts/pulse-null-sinks)"')
        return 2
    results: dict[str, Figures] = {}
    if args.only in (None, "voicedesk"):
        results[VoicedeskClient.name] = measure(VoicedeskClient, args.trials)
    if args.only in (None, "sdk"):
        results[SdkClient.name] = measure(SdkClient, args.trials)
    print(report(results, args.trials))
    for name, figures in results.items():
        if figures.glitches:
            print(f"{name}: {figures.glitches} in the latency and CPU run")
    if args.threads:
        for name, figures in results.items():
            busiest = sorted(figures.cpu_by_thread.items(), key=lambda kv: -kv[1])
            shares = ", ".join(f"{thread} {share:.1f}" for thread, share in busiest if share >= 0.1)
            print(f"{name} CPU by thread (% of one core, last trial): {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
