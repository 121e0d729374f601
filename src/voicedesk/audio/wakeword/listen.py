"""``voicedesk hotword test``: listen on a microphone and print every window's score."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from voicedesk.audio.resample import StreamResampler
from voicedesk.audio.wakeword.detector import Detection, HotwordDetector, WindowScore
from voicedesk.audio.wakeword.features import SAMPLE_RATE
from voicedesk.audio.wakeword.reference import HotwordReference

CHUNK_MS = 20


def format_score(score: WindowScore) -> str:
    """One line per scored window: time, a bar, the scores, and what was decided."""
    if score.confidence is None:
        return f"{score.audio_time_s:8.2f} s  (quiet, not scored)"
    filled = max(0, min(40, round((score.confidence - 0.5) * 80)))
    bar = "#" * filled + "." * (40 - filled)
    margin = (
        ""
        if score.margin is None or score.margin == float("inf")
        else f" margin {score.margin:+.3f}"
    )
    mark = "  <- HEARD" if score.detected else ("  (candidate)" if score.candidate else "")
    kind = " confirm" if score.check == "confirm" else ""
    return f"{score.audio_time_s:8.2f} s  {bar} {score.confidence:.3f}{margin}{kind}{mark}"


def listen_and_print_scores(
    reference: HotwordReference,
    *,
    input_device: str | int | None = None,
    seconds: float | None = None,
    threshold: float | None = None,
    print_line: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> list[Detection]:
    """Open the microphone (``input_device``: index, part of a name, or ``None`` for the
    default), feed a :class:`HotwordDetector` and print each window's score until
    ``seconds`` of audio have passed, ``stop`` is set or Ctrl-C. Returns the detections.

    No echo cancellation here (nothing is playing). Raises
    :class:`~voicedesk.audio.port.DeviceError` (a sentence) when no microphone opens,
    and :class:`~voicedesk.audio.wakeword.HotwordModelError` when the model is missing.
    """
    from voicedesk.audio.devices import PortAudio

    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    detections: list[Detection] = []
    detector = HotwordDetector(
        reference,
        threshold=threshold,
        on_score=lambda s: lines.put(format_score(s)),
        on_detect=detections.append,
    )
    captured: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def on_audio(
        in_data: bytes | None, frame_count: int, time_info: Any, status: int
    ) -> tuple[None, int]:
        if in_data:
            captured.put(in_data)
        return None, 0

    stop = stop or threading.Event()
    portaudio = PortAudio()
    stream = None
    try:
        device = portaudio.choose(input_device, output=False)
        rate = portaudio.supported_rate(device, output=False, preferred=SAMPLE_RATE)
        resampler = StreamResampler(rate, SAMPLE_RATE, "LQ")
        stream = portaudio.open(
            device,
            output=False,
            rate=rate,
            frames_per_buffer=rate * CHUNK_MS // 1000,
            callback=on_audio,
        )
        margin = (
            f", margin >= {detector.min_margin:+.3f}" if reference.negatives is not None else ""
        )
        print_line(
            f"Listening for {reference.name!r} on {device.name} "
            f"(threshold {detector.threshold:.3f}{margin}). Ctrl-C stops."
        )
        started = time.monotonic()
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.is_set():
                if seconds is not None and detector.audio_time_s >= seconds:
                    break
                if time.monotonic() - started > 3.0 and detector.audio_time_s == 0.0:
                    print_line("The microphone delivers no audio.")
                    break
                try:
                    data = captured.get(timeout=0.1)
                except queue.Empty:
                    data = b""
                if data:
                    detector.feed(resampler.process(np.frombuffer(data, dtype=np.int16)))
                with contextlib.suppress(queue.Empty):
                    while True:
                        print_line(lines.get_nowait())
    finally:
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.stop_stream()
            with contextlib.suppress(Exception):
                stream.close()
        portaudio.terminate()
        detector.close()
        with contextlib.suppress(queue.Empty):
            while True:
                print_line(lines.get_nowait())
    return detections
