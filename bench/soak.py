"""Soak: does a long voice conversation leak? Memory, threads, descriptors, glitches.

The client runs in this process as the app runs it: a :class:`~voicedesk.launch.Launcher`
builds the :class:`~voicedesk.session.Conversation` with the real
:class:`~voicedesk.audio.engine.AudioEngine` (echo cancellation and noise suppression
on, as shipped), the app's desktop tools and the conversation history written to a
temporary folder. The demo agent runs in a process of its own
(``python -m voicedesk localagent --port 0 --voice espeak``), so what is measured is
the client alone; the agent's RSS is reported on its own row. Audio goes through the
PulseAudio null sinks (``scripts/pulse-null-sinks``): the agent's voice (espeak-ng, sent
4x faster than real time) plays into ``speaker``, and the user's speech (espeak-ng
sentences) is played into ``micsink``, the microphone.

For ``--minutes`` (30 by default, warm-up included) a script repeats, a step every few
seconds: "what's my battery?" typed (the agent calls the client tool
``getBatteryLevel`` and speaks the answer), a sentence spoken into the microphone while
the agent is silent (a voice turn: it answers), a sentence spoken while it talks (a
barge-in: it stops, then answers), a contextual update with the microphone muted for
a moment, "hello" typed (a long spoken reply), and a message typed while it talks.
The speaker and the microphone move between the ``pulse`` and ``default`` devices once
during the warm-up and then every ``--switch-every`` minutes.

Measured, at the end of the warm-up (``--warmup-s``) and at the end, with the script
paused until the last sentence has been played and any tool thread has ended (the
smallest of three readings 0.3 s apart, so a helper thread that is just ending does not
count): the process's RSS, threads, open file descriptors and sockets (inet, unix). RSS
is also read every 10 s, and its growth is the slope of a least-squares line through
the readings after the warm-up (steadier than end minus start). The engine's counters
give speaker underruns and microphone overflows (since the call started; the target
is about those after the warm-up). A task wakes every 10 ms on the event loop and
records how late it woke (the stall); p99 and max over the first and the last minute
after the warm-up, kept in fixed histograms (the bench's own bookkeeping does not grow).
The loop's default executor is filled to its size first, so its threads, started
lazily, do not read as a leak.

Targets for 30 minutes: RSS growth after the warm-up <= 5 MB, threads and descriptors
flat, 0 underruns and 0 overflows (on an idle machine), stall p99 <= 16 ms.

Run::

    eval "$(scripts/pulse-null-sinks)"
    .venv/bin/python bench/soak.py                 # 30 min
    .venv/bin/python bench/soak.py --minutes 3     # the CI variant (tests/test_soak.py)

``--json FILE`` also writes the figures as JSON (the test reads them). Exit status 1
when the conversation broke off, 2 without the sound server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.audio.pulse import Player, play_into, pulse_ready

RSS_TARGET_MB_PER_30_MIN = 5.0
STALL_P99_TARGET_MS = 16.0
TICK_S = 0.010
STALL_BIN_MS = 0.1
STALL_BINS = 2000  # 0-200 ms in 0.1 ms bins, then one bin for anything longer
SAMPLE_EVERY_S = 10.0
STEP_NAMES = ("battery", "spoken turn", "barge-in", "context+mute", "hello", "typed over")
SENTENCES = (
    "Could you tell me how much battery I have left on this laptop?",
    "I would like to hear about the weather in Paris tomorrow morning.",
    "Wait, stop for a second, I have another question for you.",
)


# ------------------------------------------------------------------ measurements


@dataclass(slots=True)
class Reading:
    """The client process at one moment."""

    at_s: float  # since the start of the run
    rss_mb: float
    threads: int
    fds: int
    inet: int
    unix: int

    @classmethod
    def take(cls, process: psutil.Process, at_s: float) -> Reading:
        return cls(
            at_s=at_s,
            rss_mb=process.memory_info().rss / 2**20,
            threads=process.num_threads(),
            fds=process.num_fds(),
            inet=len(process.net_connections("inet")),
            unix=len(process.net_connections("unix")),
        )


class StallProbe:
    """Wakes every 10 ms on the event loop and records how late it woke.

    Four fixed histograms: the warm-up, the first minute after it, the last minute of
    the run, and the whole run after the warm-up."""

    WARMUP, FIRST, LAST, RUN = range(4)

    def __init__(self, measure_from: float, measure_to: float) -> None:
        self.measure_from = measure_from
        self.measure_to = measure_to
        self.counts: npt.NDArray[np.int64] = np.zeros((4, STALL_BINS + 1), dtype=np.int64)
        self.worst_ms: npt.NDArray[np.float64] = np.zeros(4)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + TICK_S
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            self._record(now, max(0.0, (now - due) * 1000.0))
            due = now + TICK_S

    def _record(self, now: float, late_ms: float) -> None:
        rows = [self.WARMUP] if now < self.measure_from else [self.RUN]
        if self.measure_from <= now < self.measure_from + 60:
            rows.append(self.FIRST)
        if self.measure_to - 60 <= now <= self.measure_to:
            rows.append(self.LAST)
        index = min(STALL_BINS, int(late_ms / STALL_BIN_MS))
        for row in rows:
            self.counts[row, index] += 1
            if late_ms > self.worst_ms[row]:
                self.worst_ms[row] = late_ms

    def percentile(self, row: int, q: float) -> float:
        counts = self.counts[row]
        total = int(counts.sum())
        if total == 0:
            return math.nan
        index = int(np.searchsorted(np.cumsum(counts), q * total))
        if index >= STALL_BINS:
            return float(self.worst_ms[row])
        return min((index + 1) * STALL_BIN_MS, float(self.worst_ms[row]))

    def ticks(self, row: int) -> int:
        return int(self.counts[row].sum())


@dataclass
class Result:
    """Everything the run measured (``--json`` writes it)."""

    minutes: float
    warmup_s: float
    switch_every_min: float
    date: str
    machine: str
    echo_canceller: str = ""
    start: Reading | None = None
    end: Reading | None = None
    before_call: Reading | None = None
    after_call: Reading | None = None
    rss_slope_mb_per_min: float = math.nan
    rss_growth_fit_mb: float = math.nan  # slope x the minutes after the warm-up
    rss_samples: int = 0
    rss_min_mb: float = math.nan
    rss_max_mb: float = math.nan
    threads_max: int = 0
    fds_max: int = 0
    underruns_start: int = 0
    underruns_end: int = 0
    overflows_start: int = 0
    overflows_end: int = 0
    underruns_in_switches: int = 0
    overflows_in_switches: int = 0
    stall_p50_ms: float = math.nan
    stall_p99_first_ms: float = math.nan
    stall_p99_last_ms: float = math.nan
    stall_p99_run_ms: float = math.nan
    stall_max_first_ms: float = math.nan
    stall_max_last_ms: float = math.nan
    stall_max_run_ms: float = math.nan
    stall_ticks: int = 0
    cpu_percent: float = math.nan
    agent_rss_start_mb: float = math.nan
    agent_rss_end_mb: float = math.nan
    steps: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    device_switches: int = 0
    log_warnings: int = 0
    connected_at_end: bool = False
    load_start: float = math.nan  # the machine's 1-minute load average
    load_end: float = math.nan
    #: (seconds since the start, RSS MB, underruns, overflows) every 10 s
    series: list[list[float]] = field(default_factory=list)
    #: 10 s readings after the warm-up in which the underrun count rose
    underrun_windows: int = 0
    #: underruns after the warm-up during each kind of step (switches: their own field)
    underruns_by_step: dict[str, int] = field(default_factory=dict)
    error: str | None = None


# ------------------------------------------------------------------ the demo agent


class AgentProcess:
    """``voicedesk localagent`` in a process of its own, on a free port."""

    def __init__(self, workdir: Path) -> None:
        self._out = workdir / "agent.out"
        self._err = workdir / "agent.err"
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "voicedesk",
                    "localagent",
                    "--port",
                    "0",
                    "--voice",
                    "espeak",
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        self.url = self._wait_for_url(30.0)
        self.process = psutil.Process(self.proc.pid)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"listening on (http://\S+)", self._out.read_text())
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the demo agent did not start: {self._err.read_text()[-2000:]}")

    def rss_mb(self) -> float:
        try:
            return float(self.process.memory_info().rss / 2**20)
        except psutil.Error:
            return math.nan

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ------------------------------------------------------------------ the run


class Soak:
    def __init__(self, args: argparse.Namespace, agent: AgentProcess, log_path: Path) -> None:
        self.minutes = float(args.minutes)
        self.warmup_s = float(args.warmup_s)
        self.switch_every_s = 60.0 * float(args.switch_every)
        self.agent = agent
        self.log_path = log_path
        self.process = psutil.Process()
        self.result = Result(
            minutes=self.minutes,
            warmup_s=self.warmup_s,
            switch_every_min=float(args.switch_every),
            date=time.strftime("%Y-%m-%d %H:%M"),
            machine=(
                f"{platform.node()}, {psutil.cpu_count()} cores {platform.machine()}, "
                f"Python {platform.python_version()}"
            ),
        )
        self.events: Counter[str] = Counter()
        self.steps: Counter[str] = Counter()
        self.underruns_by_step: Counter[str] = Counter()
        self.clips: list[npt.NDArray[np.int16]] = []
        self.player: Player | None = None
        # RSS every 10 s: preallocated, so the bench's own lists do not grow.
        capacity = int(self.minutes * 60 / SAMPLE_EVERY_S) + 16
        # Columns: seconds since the start, RSS (MB), speaker underruns, mic overflows.
        self.rss: npt.NDArray[np.float64] = np.full((capacity, 4), np.nan)
        self.engine: Any = None
        self.rss_count = 0
        self.threads_max = 0
        self.fds_max = 0
        self.t0 = 0.0

    # -------------------------------------------------------------- helpers

    def now(self) -> float:
        return time.monotonic() - self.t0

    def on_event(self, event: object) -> None:
        self.events[type(event).__name__] += 1

    async def speak(self, clip: npt.NDArray[np.int16], *, wait: bool) -> None:
        """Play a sentence into the microphone's sink (16 kHz, in real time)."""
        await self.finish_speaking()
        self.player = play_into(clip, 16000)
        if wait:
            await self.finish_speaking()

    async def finish_speaking(self) -> None:
        player, self.player = self.player, None
        if player is not None:
            await asyncio.to_thread(player.wait, 30)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def quiet_reading(self) -> Reading:
        """The smallest of three readings 0.3 s apart, once the sentence being played
        has ended and a tool's thread has had time to end (RSS: the median)."""
        await self.finish_speaking()
        await asyncio.sleep(1.5)
        readings = []
        for _ in range(3):
            readings.append(await asyncio.to_thread(Reading.take, self.process, self.now()))
            await asyncio.sleep(0.3)
        return Reading(
            at_s=readings[-1].at_s,
            rss_mb=float(np.median([r.rss_mb for r in readings])),
            threads=min(r.threads for r in readings),
            fds=min(r.fds for r in readings),
            inet=min(r.inet for r in readings),
            unix=min(r.unix for r in readings),
        )

    async def sampler(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY_S)
            reading = await asyncio.to_thread(Reading.take, self.process, self.now())
            engine = self.engine
            if self.rss_count < len(self.rss):
                self.rss[self.rss_count] = (
                    reading.at_s,
                    reading.rss_mb,
                    engine.speaker_underruns if engine is not None else 0,
                    engine.microphone_overflows if engine is not None else 0,
                )
                self.rss_count += 1
            if reading.at_s >= self.warmup_s:
                self.threads_max = max(self.threads_max, reading.threads)
                self.fds_max = max(self.fds_max, reading.fds)

    # -------------------------------------------------------------- the script

    async def step(self, index: int, conversation: Any) -> None:
        """One step of the script (it repeats every six steps)."""
        kind = index % 6
        if kind == 0:  # a client tool call, then its answer spoken
            conversation.send_user_message("what's my battery?")
            self.steps["typed: battery (tool call)"] += 1
            await asyncio.sleep(6.0)
        elif kind == 1:  # a voice turn while the agent is silent
            await self.wait_until(lambda: not conversation.is_speaking, 20.0)
            await asyncio.sleep(0.5)
            await self.speak(self.clips[index % len(self.clips)], wait=True)
            self.steps["spoken turns"] += 1
            await asyncio.sleep(2.0)  # its answer starts (it talks ~8 s)
        elif kind == 2:  # a barge-in: speech while the agent talks
            await self.wait_until(lambda: conversation.is_speaking, 8.0)
            await asyncio.sleep(1.0)
            speaking = conversation.is_speaking
            await self.speak(self.clips[2], wait=True)
            label = "barge-ins (spoken while the agent talked)" if speaking else "spoken turns"
            self.steps[label] += 1
            await asyncio.sleep(3.0)
        elif kind == 3:  # a contextual update, the microphone muted for a moment
            conversation.send_contextual_update("The user is looking at the settings window.")
            conversation.set_mic_muted(True)
            await asyncio.sleep(1.5)
            conversation.set_mic_muted(False)
            self.steps["contextual updates (and mute)"] += 1
            await asyncio.sleep(2.0)
        elif kind == 4:  # a long spoken reply
            conversation.send_user_message("hello")
            self.steps["typed: hello"] += 1
            await asyncio.sleep(4.0)
        else:  # typed while it talks
            speaking = conversation.is_speaking
            conversation.send_user_message("what's my battery?")
            label = "typed while the agent talked" if speaking else "typed: battery (tool call)"
            self.steps[label] += 1
            await asyncio.sleep(6.0)

    async def switch(self, engine: Any) -> None:
        """Both devices to the other ALSA device on the same sound server and back."""
        await self.finish_speaking()
        current = engine.output_device
        other = "pulse" if current is None or current.name != "pulse" else "default"
        underruns, overflows = engine.speaker_underruns, engine.microphone_overflows
        await engine.switch_devices(input_device=other, output_device=other)
        await asyncio.sleep(2.0)
        self.result.underruns_in_switches += engine.speaker_underruns - underruns
        self.result.overflows_in_switches += engine.microphone_overflows - overflows
        self.result.device_switches += 1

    async def run(self) -> Result:
        from voicedesk.audio.settings import AudioSettings
        from voicedesk.launch import Launcher, LaunchPlan
        from voicedesk.session import ConversationOptions
        from voicedesk.tools.desktop import desktop_tools

        r = self.result
        loop = asyncio.get_running_loop()
        # Fill the default executor to its size now: it starts threads lazily, and one
        # started late in the run would look like a leak.
        workers = min(32, (os.cpu_count() or 1) + 4)
        await asyncio.gather(*(asyncio.to_thread(time.sleep, 0.05) for _ in range(workers)))
        from voicedesk.audio.wakeword.synth import espeak

        self.clips = [await asyncio.to_thread(espeak, text, "en-us") for text in SENTENCES]

        plan = LaunchPlan(
            ConversationOptions(agent_id="demo", server_url=self.agent.url),
            demo=False,
            audio=AudioSettings(echo_cancellation=True),
        )
        launcher = Launcher(plan, desktop_tools)
        self.t0 = time.monotonic()
        r.before_call = await asyncio.to_thread(Reading.take, self.process, 0.0)
        total_s = self.minutes * 60.0
        probe = StallProbe(loop.time() + self.warmup_s, loop.time() + total_s)
        background = [asyncio.ensure_future(probe.run()), asyncio.ensure_future(self.sampler())]
        conversation = await launcher.new_conversation()
        conversation.add_listener(self.on_event)
        try:
            if not await conversation.start() or conversation.is_text_only:
                raise RuntimeError("the voice conversation did not start")
            engine = launcher.engine
            assert engine is not None
            self.engine = engine
            r.echo_canceller = str(engine.echo_canceller_name)
            index = 0
            switched_in_warmup = False
            next_switch = self.warmup_s + self.switch_every_s
            cpu_start = 0.0
            # Warm-up: the script runs, with one device switch halfway.
            while self.now() < self.warmup_s - 8.0:
                if not switched_in_warmup and self.now() >= self.warmup_s / 2:
                    await self.switch(engine)
                    switched_in_warmup = True
                    continue
                await self.step(index, conversation)
                index += 1
            if not switched_in_warmup:
                await self.switch(engine)
            await asyncio.sleep(max(0.0, self.warmup_s - self.now()))
            r.start = await self.quiet_reading()
            r.underruns_start = engine.speaker_underruns
            r.overflows_start = engine.microphone_overflows
            r.agent_rss_start_mb = self.agent.rss_mb()
            r.load_start = os.getloadavg()[0]
            cpu = self.process.cpu_times()
            cpu_start, wall_start = cpu.user + cpu.system, time.monotonic()
            # The run proper; stop early enough that the last step and the quiet
            # reading end on time.
            while self.now() < total_s - 14.0:
                if self.now() >= next_switch:
                    await self.switch(engine)
                    next_switch += self.switch_every_s
                    continue
                before = engine.speaker_underruns
                await self.step(index, conversation)
                self.underruns_by_step[STEP_NAMES[index % 6]] += engine.speaker_underruns - before
                index += 1
                if conversation.status.value != "connected":
                    raise RuntimeError(f"the conversation ended: {conversation.last_disconnect}")
            await self.finish_speaking()
            await self.wait_until(lambda: not conversation.is_speaking, 12.0)
            r.end = await self.quiet_reading()
            cpu = self.process.cpu_times()
            busy = cpu.user + cpu.system - cpu_start
            r.cpu_percent = 100 * busy / (time.monotonic() - wall_start)
            r.underruns_end = engine.speaker_underruns
            r.overflows_end = engine.microphone_overflows
            r.agent_rss_end_mb = self.agent.rss_mb()
            r.load_end = os.getloadavg()[0]
            r.connected_at_end = conversation.status.value == "connected"
        except Exception as exc:
            r.error = f"{type(exc).__name__}: {exc}"
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.finish_speaking()
            await conversation.end()
            await launcher.close()
            await asyncio.sleep(1.0)
            r.after_call = await asyncio.to_thread(Reading.take, self.process, self.now())
        self._summarise(probe)
        return r

    def _summarise(self, probe: StallProbe) -> None:
        r = self.result
        samples = self.rss[: self.rss_count]
        r.series = [[round(float(v), 3) for v in row] for row in samples]
        after = samples[samples[:, 0] >= self.warmup_s]
        if len(after) >= 2:
            r.underrun_windows = int(np.count_nonzero(np.diff(after[:, 2]) > 0))
        after = after[:, :2]
        if len(after) < 3:  # too short a run: the quiet readings too
            if r.start is not None:
                after = np.vstack([[r.start.at_s, r.start.rss_mb], after])
            if r.end is not None:
                after = np.vstack([after, [r.end.at_s, r.end.rss_mb]])
        r.rss_samples = len(after)
        if len(after) >= 3:
            minutes = after[:, 0] / 60.0
            slope = float(np.polyfit(minutes, after[:, 1], 1)[0])
            r.rss_slope_mb_per_min = slope
            r.rss_growth_fit_mb = slope * (minutes[-1] - minutes[0])
            r.rss_min_mb = float(after[:, 1].min())
            r.rss_max_mb = float(after[:, 1].max())
        r.threads_max = self.threads_max
        r.fds_max = self.fds_max
        r.stall_p50_ms = probe.percentile(probe.RUN, 0.50)
        r.stall_p99_first_ms = probe.percentile(probe.FIRST, 0.99)
        r.stall_p99_last_ms = probe.percentile(probe.LAST, 0.99)
        r.stall_p99_run_ms = probe.percentile(probe.RUN, 0.99)
        r.stall_max_first_ms = float(probe.worst_ms[probe.FIRST])
        r.stall_max_last_ms = float(probe.worst_ms[probe.LAST])
        r.stall_max_run_ms = float(probe.worst_ms[probe.RUN])
        r.stall_ticks = probe.ticks(probe.RUN)
        r.steps = dict(self.steps)
        r.underruns_by_step = dict(self.underruns_by_step)
        r.events = dict(self.events)
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            r.log_warnings = len(re.findall(r" (WARNING|ERROR|CRITICAL) ", text))


# ------------------------------------------------------------------ report


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def report(r: Result) -> str:
    measured_min = (r.minutes * 60 - r.warmup_s) / 60
    lines = [
        f"Soak: {r.minutes:g} min voice conversation with the demo agent (its own process) "
        f"through the PulseAudio null sinks, warm-up {r.warmup_s:g} s, device switch every "
        f"{r.switch_every_min:g} min; {r.date}, {r.machine}; echo canceller: "
        f"{r.echo_canceller or '?'}",
        "",
        "| figure | at start | at end | target | met |",
        "|---|---|---|---|---|",
    ]
    s, e = r.start, r.end
    if s is not None and e is not None:
        per_30 = r.rss_slope_mb_per_min * 30
        lines += [
            f"| RSS, MB | {s.rss_mb:.1f} | {e.rss_mb:.1f} | | |",
            f"| RSS growth after warm-up, MB (fit over {r.rss_samples} readings; "
            f"{measured_min:.1f} min) | | {r.rss_growth_fit_mb:+.2f} "
            f"({r.rss_slope_mb_per_min:+.3f}/min, {per_30:+.1f} per 30 min) | "
            f"<= {RSS_TARGET_MB_PER_30_MIN:g} per 30 min | "
            f"{_met(per_30 <= RSS_TARGET_MB_PER_30_MIN)} |",
            f"| threads | {s.threads} | {e.threads} | flat | {_met(e.threads <= s.threads)} |",
            f"| open file descriptors | {s.fds} | {e.fds} | flat | {_met(e.fds <= s.fds)} |",
            f"| sockets: inet / unix | {s.inet} / {s.unix} | {e.inet} / {e.unix} | flat | "
            f"{_met(e.inet <= s.inet and e.unix <= s.unix)} |",
        ]
    glitches_ok = r.underruns_end == r.underruns_start and r.overflows_end == r.overflows_start
    p99_ok = max(r.stall_p99_first_ms, r.stall_p99_last_ms) <= STALL_P99_TARGET_MS
    lines += [
        f"| speaker underruns (since the call started) | {r.underruns_start} | "
        f"{r.underruns_end} | 0 after warm-up | {_met(r.underruns_end == r.underruns_start)} |",
        f"| microphone overflows | {r.overflows_start} | {r.overflows_end} | 0 after warm-up | "
        f"{_met(r.overflows_end == r.overflows_start)} |",
        f"| event-loop stall p99, ms (first / last minute) | {r.stall_p99_first_ms:.1f} | "
        f"{r.stall_p99_last_ms:.1f} | <= {STALL_P99_TARGET_MS:g} | {_met(p99_ok)} |",
        f"| event-loop stall max, ms (first / last minute) | {r.stall_max_first_ms:.1f} | "
        f"{r.stall_max_last_ms:.1f} | | |",
        f"| demo agent RSS, MB (its own process) | {r.agent_rss_start_mb:.1f} | "
        f"{r.agent_rss_end_mb:.1f} | | |",
        "",
        f"Whole run after the warm-up: stall p50 {r.stall_p50_ms:.1f} ms, p99 "
        f"{r.stall_p99_run_ms:.1f} ms, max {r.stall_max_run_ms:.1f} ms ({r.stall_ticks} ticks); "
        f"RSS {r.rss_min_mb:.1f}-{r.rss_max_mb:.1f} MB; threads up to {r.threads_max}, "
        f"descriptors up to {r.fds_max} (10 s readings, helper threads included); "
        f"client CPU {r.cpu_percent:.1f} % of one core; load average {r.load_start:.2f} "
        f"at the start, {r.load_end:.2f} at the end.",
    ]
    if r.before_call is not None and r.after_call is not None:
        b, a = r.before_call, r.after_call
        lines.append(
            f"Before the call / after it ended and the launcher closed: threads {b.threads} / "
            f"{a.threads}, descriptors {b.fds} / {a.fds}, RSS {b.rss_mb:.1f} / {a.rss_mb:.1f} MB."
        )
    steps = ", ".join(f"{k} {v}" for k, v in sorted(r.steps.items()))
    ev = r.events
    lines.append(
        f"Script: {steps}; device switches {r.device_switches} (underruns / overflows "
        f"during them: {r.underruns_in_switches} / {r.overflows_in_switches}). "
        f"Events: agent replies {ev.get('AgentResponse', 0)}, interruptions "
        f"{ev.get('Interruption', 0)}, user transcripts {ev.get('UserTranscript', 0)}, "
        f"tool calls {ev.get('ToolCallFinished', 0)}, audio notices "
        f"{ev.get('AudioNotice', 0) + ev.get('AudioUnavailable', 0)}; "
        f"warnings in the log {r.log_warnings}; connected at the end: "
        f"{'yes' if r.connected_at_end else 'NO'}."
    )
    if not glitches_ok:
        lines.append(
            f"Glitches after the warm-up: underruns rose in {r.underrun_windows} of the 10 s "
            "readings; by step: "
            + ", ".join(f"{k} {v}" for k, v in r.underruns_by_step.items())
            + f"; device switches {r.underruns_in_switches}."
        )
    if r.error:
        lines.append(f"ERROR: {r.error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="whole run (default 30)")
    parser.add_argument(
        "--warmup-s", type=float, help="seconds before the start figures (30; 20 up to 5 min)"
    )
    parser.add_argument(
        "--switch-every",
        type=float,
        help="minutes between device switches after the warm-up (minutes/3, 1 to 5)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.warmup_s is None:
        args.warmup_s = 20.0 if args.minutes <= 5 else 30.0
    if args.switch_every is None:
        args.switch_every = max(1.0, min(5.0, args.minutes / 3))
    if args.minutes * 60 < args.warmup_s + 60:
        parser.error("--minutes must leave at least a minute after the warm-up")
    if not pulse_ready():
        print('PulseAudio null sinks are not running: eval "$(scripts/pulse-null-sinks)"')
        return 2
    with tempfile.TemporaryDirectory(prefix="voicedesk-soak-") as tmp:
        workdir = Path(tmp)
        os.environ["VOICEDESK_CONFIG_DIR"] = str(workdir / "config")
        os.environ["VOICEDESK_LOG_DIR"] = str(workdir / "logs")
        os.environ["VOICEDESK_HISTORY_DIR"] = str(workdir / "history")
        from voicedesk.config import setup_logging

        log_path = setup_logging() or workdir / "logs" / "voicedesk.log"
        agent = AgentProcess(workdir)
        try:
            result = asyncio.run(Soak(args, agent, log_path).run())
        finally:
            agent.stop()
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0 if result.error is None and result.connected_at_end else 1


if __name__ == "__main__":
    raise SystemExit(main())
