"""The tests' sound card: PulseAudio null sinks (``scripts/pulse-null-sinks``).

``SinkRecorder`` records a sink's monitor with a timestamp per 5 ms block, so what
was heard can be lined up with what the session did; ``play_into`` plays samples
into a sink (``micsink`` is the default microphone).
"""

from __future__ import annotations

import bisect
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 48000
BLOCK = RATE // 200  # 5 ms


def pulse_ready() -> bool:
    if shutil.which("pactl") is None or "PULSE_SERVER" not in os.environ:
        return False
    try:
        info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return info.returncode == 0 and "Default Sink: speaker" in info.stdout


class SinkRecorder:
    """Records ``<sink>.monitor`` at 48 kHz mono from construction until ``stop()``."""

    def __init__(self, sink: str = "speaker") -> None:
        self._proc = subprocess.Popen(
            [
                "parec",
                f"--device={sink}.monitor",
                "--latency-msec=5",
                "--raw",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
            ],
            stdout=subprocess.PIPE,
        )
        self.blocks: list[tuple[float, npt.NDArray[np.int16]]] = []
        # Each block's peak, taken as it arrives: finding loud blocks then costs no
        # numpy call per block (scanning a minute of blocks that way held the lock for
        # ~60 ms, and the reader's timestamps came late).
        self._times: list[float] = []
        self._peaks: list[int] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="test-sink-recorder", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while data := self._proc.stdout.read(BLOCK * 2):
            at = time.monotonic()
            block = np.frombuffer(data, dtype=np.int16)
            peak = int(np.abs(block.astype(np.int32)).max()) if block.size else 0
            with self._lock:
                self.blocks.append((at, block))
                self._times.append(at)
                self._peaks.append(peak)

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(5)
        self._thread.join(5)

    def audio(self, since: float = 0.0, until: float = float("inf")) -> npt.NDArray[np.int16]:
        with self._lock:
            parts = [b for t, b in self.blocks if since <= t <= until]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def loud_block_times(self, threshold: int = 1000, since: float = 0.0) -> list[float]:
        """When blocks louder than ``threshold`` (int16 peak) arrived, from ``since`` on."""
        with self._lock:
            first = bisect.bisect_left(self._times, since)
            return [
                t
                for t, p in zip(self._times[first:], self._peaks[first:], strict=True)
                if p > threshold
            ]

    def wait_for_sound(self, timeout: float, threshold: int = 1000) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            times = self.loud_block_times(threshold)
            if times:
                return times[0]
            time.sleep(0.02)
        raise AssertionError(f"no sound on the sink within {timeout} s")


class Player:
    """Plays samples into a sink at the pace of a real voice (20 ms blocks on the wall
    clock): a null sink swallows a whole buffer at once otherwise."""

    def __init__(self, samples: npt.NDArray[np.int16], rate: int, sink: str) -> None:
        self._proc = subprocess.Popen(
            [
                "pacat",
                "--playback",
                f"--device={sink}",
                "--latency-msec=20",
                "--raw",
                "--format=s16le",
                f"--rate={rate}",
                "--channels=1",
            ],
            stdin=subprocess.PIPE,
        )
        self._samples = samples.astype("<i2")
        self._rate = rate
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._feed, name="test-player", daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        assert self._proc.stdin is not None
        block = self._rate // 50
        for i, start in enumerate(range(0, self._samples.size, block)):
            delay = self.started + i * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._proc.stdin.write(self._samples[start : start + block].tobytes())
            self._proc.stdin.flush()
        self._proc.stdin.close()

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        return self._proc.wait(timeout)


def play_into(samples: npt.NDArray[np.int16], rate: int = RATE, sink: str = "micsink") -> Player:
    """Start playing ``samples`` into ``sink`` in real time; ``wait()`` for the end."""
    return Player(samples, rate, sink)


def tone(hz: float, seconds: float, rate: int = RATE, level: float = 0.3) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(np.sin(2 * np.pi * hz * t) * level * 32767).astype(np.int16)


def dominant_hz(samples: npt.NDArray[np.int16], rate: int) -> float:
    x = samples.astype(np.float64) * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(x))
    spectrum[: int(50 * samples.size / rate)] = 0  # ignore DC and hum
    return float(np.argmax(spectrum) * rate / samples.size)


def energy_db(samples: npt.NDArray[np.int16]) -> float:
    x = samples.astype(np.float64) / 32768.0
    return float(10 * np.log10(np.mean(x * x) + 1e-12))


def start_sound_server(runtime: Path) -> dict[str, str]:
    """A second private PulseAudio (same null sinks) in ``runtime``: its environment."""
    root = Path(__file__).resolve().parents[2]
    started = subprocess.run(
        [str(root / "scripts" / "pulse-null-sinks")],
        capture_output=True,
        text=True,
        env={**os.environ, "VOICEDESK_PULSE_DIR": str(runtime)},
        check=True,
    )
    # export PULSE_RUNTIME_PATH='…' PULSE_SERVER='…'
    pairs = started.stdout.strip().removeprefix("export ").split(" ")
    return {key: value.strip("'") for key, value in (pair.split("=", 1) for pair in pairs)}
