"""The hotword detector: microphone frames in, detections out, scored on its own thread.

Threads:

- the caller's (the audio engine's DSP thread): :meth:`HotwordDetector.feed` appends
  samples to a ring buffer and, every ``hop_s`` of audio, hands a copy of the last
  window to the worker. It never waits for scoring: when the worker falls behind, the
  oldest waiting windows are dropped (counted in ``dropped_windows``).
- the worker (``voicedesk-hotword``): features, the model, the scores; it calls
  ``on_score`` for every window and ``on_detect`` for every detection. Both run on the
  worker thread: keep them short and hand over to other threads yourself (e.g.
  ``loop.call_soon_threadsafe``).

Time is audio time: samples fed / 16,000. A detection's ``audio_time_s`` is the end of
the window that confirmed it; relaxation (no second detection within ``relax_s``) is
counted in audio time too, so it behaves the same faster or slower than real time.

Deciding: a window is a *candidate* when ``confidence >= threshold`` and (for a
reference with negatives) ``margin >= min_margin``. With ``confirm_shift_s > 0`` a
candidate becomes a detection only when the window ``confirm_shift_s`` earlier or
later also passes slightly looser limits (:data:`CONFIRM_SLACK`, :data:`CONFIRM_MARGIN_SLACK`):
a true hotword scores high wherever the window catches it, a sound-alike at one lucky
alignment. That second check costs one or two extra windows per candidate only.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from voicedesk.audio.wakeword.features import SAMPLE_RATE
from voicedesk.audio.wakeword.model import WINDOW_SAMPLES, EmbeddingModel, shared_model
from voicedesk.audio.wakeword.reference import PADDING_NOISE, HotwordReference

logger = logging.getLogger(__name__)

# Settings chosen with `bench/wakeword.py --sweep` (its table is in bench/README.md): a
# 0.5 s hop keeps the model near 5 % of a core during speech (a 0.25 s hop would double
# that; the second check scores the windows 0.25 s either side of a candidate only); at
# the default reference's settings the second check cut near misses from 13.5 % to 8.9 %
# for 2.5 points of detection (89.7 -> 87.2 %), and false triggers in 15 min from 1 to 0.
WINDOW_S = WINDOW_SAMPLES / SAMPLE_RATE  # the model's input: fixed
HOP_S = 0.5
RELAX_S = 2.0
#: For references that suggest none (those trained from recordings, which have no
#: negatives): EfficientWord-Net's usual range is 0.7-0.8.
DEFAULT_THRESHOLD = 0.75
DEFAULT_MIN_MARGIN = 0.0
CONFIRM_SHIFT_S = 0.25
CONFIRM_SLACK = 0.05
CONFIRM_MARGIN_SLACK = 0.02
#: Windows whose loudest 10 ms is quieter than this are not scored (no speech there):
#: a quiet room costs under 1 % of a core.
ENERGY_GATE_DBFS = -55.0
MAX_PENDING_WINDOWS = 8

Int16Samples = npt.NDArray[np.int16]

# Quiet noise added to every window, at the level references have under their padding:
# stretches of digital silence (a sound server starting, a muted or gated microphone)
# give features no microphone produces. Over 10 held-out voices saying "hey eleven" in
# digital silence it raised the confidence by 0.015 on average, and up to 0.056.
_DITHER = (np.random.default_rng(11).standard_normal(WINDOW_SAMPLES) * PADDING_NOISE).astype(
    np.float32
)


@dataclass(frozen=True, slots=True)
class Detection:
    """The hotword was heard. ``confidence`` 0..1; ``audio_time_s``: audio time of the
    end of the window that confirmed it."""

    name: str
    confidence: float
    audio_time_s: float


@dataclass(frozen=True, slots=True)
class WindowScore:
    """One scored window (for ``voicedesk hotword test`` and the benchmark).

    ``confidence``/``margin`` are ``None`` for a window the energy gate skipped;
    ``check`` is "window" for the regular sliding windows and "confirm" for the second
    check's shifted ones."""

    audio_time_s: float
    confidence: float | None
    margin: float | None
    candidate: bool
    detected: bool
    check: str = "window"


@dataclass(frozen=True, slots=True)
class _Job:
    end_sample: int  # audio time of the window's last sample + 1
    audio: Int16Samples  # the window, with confirm_shift_s more audio before it
    check: str  # "window" | "confirm"


class HotwordDetector:
    """Listens for one hotword in 16 kHz mono int16 frames.

    Constructing it loads the model (about 0.2 s the first time in a process, shared
    after): do it off the event loop. ``threshold``/``min_margin`` default to the
    reference's own, else :data:`DEFAULT_THRESHOLD`/:data:`DEFAULT_MIN_MARGIN`.
    :meth:`feed` may be called from one thread at a time; :meth:`close` from any.
    """

    def __init__(
        self,
        reference: HotwordReference,
        *,
        threshold: float | None = None,
        min_margin: float | None = None,
        window_s: float = WINDOW_S,
        hop_s: float = HOP_S,
        relax_s: float = RELAX_S,
        confirm_shift_s: float = CONFIRM_SHIFT_S,
        energy_gate_dbfs: float = ENERGY_GATE_DBFS,
        on_detect: Callable[[Detection], None] | None = None,
        on_score: Callable[[WindowScore], None] | None = None,
        model: EmbeddingModel | None = None,
        max_pending: int = MAX_PENDING_WINDOWS,
    ) -> None:
        if round(window_s * SAMPLE_RATE) != WINDOW_SAMPLES:
            raise ValueError(f"the model's window is {WINDOW_S} s; window_s={window_s} cannot work")
        if not 0.0 < hop_s <= window_s:
            raise ValueError(f"hop_s must be in (0, {window_s}], got {hop_s}")
        self.reference = reference
        self.threshold = float(
            threshold
            if threshold is not None
            else (reference.threshold if reference.threshold is not None else DEFAULT_THRESHOLD)
        )
        self.min_margin = float(
            min_margin
            if min_margin is not None
            else (reference.min_margin if reference.min_margin is not None else DEFAULT_MIN_MARGIN)
        )
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        self.hop_samples = max(1, round(hop_s * SAMPLE_RATE))
        self.relax_samples = max(0, round(relax_s * SAMPLE_RATE))
        self.shift_samples = max(0, round(confirm_shift_s * SAMPLE_RATE))
        self.gate_dbfs = energy_gate_dbfs
        self.on_detect = on_detect
        self.on_score = on_score
        self._model = model if model is not None else shared_model()

        # The feeder's state (one thread at a time).
        span = WINDOW_SAMPLES + self.shift_samples
        self._ring = np.zeros(2 * span + self.hop_samples, dtype=np.int16)
        self._span = span
        self._written = 0  # samples fed so far: the audio clock
        self._next_window_end = WINDOW_SAMPLES
        self._confirm_at: collections.deque[int] = collections.deque()  # from the worker

        # Handed to the worker.
        self._jobs: collections.deque[_Job] = collections.deque(maxlen=max(1, max_pending))
        self._wake = threading.Event()
        self._busy = False
        self._closed = False
        self.dropped_windows = 0
        self.windows_scored = 0
        self.windows_gated = 0

        # The worker's state.
        self._last_detection_end: int | None = None
        self._candidate: tuple[int, float] | None = None  # (end sample, confidence)
        self._worker = threading.Thread(target=self._run, name="voicedesk-hotword", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ the feeder's side

    @property
    def audio_time_s(self) -> float:
        """Audio fed so far, in seconds (the detector's clock)."""
        return self._written / SAMPLE_RATE

    @property
    def pending_windows(self) -> int:
        """Windows handed over and not yet scored (an offline caller feeding faster than
        real time waits while this is high, so nothing is dropped)."""
        return len(self._jobs) + (1 if self._busy else 0)

    def feed(self, frames: Int16Samples) -> None:
        """Append microphone samples (int16, mono, 16 kHz, any length). Cheap and never
        blocks: a copy into a ring buffer, and a window handed over every ``hop_s``."""
        if self._closed:
            return
        samples = np.asarray(frames, dtype=np.int16).reshape(-1)
        position = 0
        while position < samples.size:
            boundary = self._next_window_end
            if self._confirm_at:
                boundary = min(boundary, self._confirm_at[0])
            take = min(samples.size - position, max(1, boundary - self._written))
            self._write(samples[position : position + take])
            position += take
            self._emit_due()

    def _write(self, piece: Int16Samples) -> None:
        size = self._ring.size
        start = self._written % size
        first = min(piece.size, size - start)
        self._ring[start : start + first] = piece[:first]
        if first < piece.size:
            self._ring[: piece.size - first] = piece[first:]
        self._written += piece.size

    def _recent(self, count: int) -> Int16Samples:
        """The last ``count`` samples fed (zeros before the start)."""
        size = self._ring.size
        end = self._written % size
        indices = (np.arange(end - count, end)) % size
        out = self._ring[indices]
        missing = count - min(count, self._written)
        if missing:
            out[:missing] = 0
        return out

    def _emit_due(self) -> None:
        while self._confirm_at and self._confirm_at[0] <= self._written:
            end = self._confirm_at.popleft()
            if self._written - end <= self._ring.size - self._span:
                lag = self._written - end
                audio = self._recent(self._span + lag)[: self._span]
                self._submit(_Job(end, audio, "confirm"))
        if self._written >= self._next_window_end:
            self._submit(_Job(self._written, self._recent(self._span), "window"))
            self._next_window_end = self._written + self.hop_samples

    def _submit(self, job: _Job) -> None:
        if len(self._jobs) == self._jobs.maxlen:
            self.dropped_windows += 1
        self._jobs.append(job)
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    def close(self, timeout: float = 2.0) -> None:
        """Stop the worker (it finishes the window it is scoring) and wait for it."""
        self._closed = True
        self._wake.set()
        if self._worker is not threading.current_thread():
            self._worker.join(timeout)

    @property
    def running(self) -> bool:
        return self._worker.is_alive()

    def __enter__(self) -> HotwordDetector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the worker

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            while self._jobs and not self._closed:
                self._busy = True
                job = self._jobs.popleft()
                try:
                    self._handle(job)
                except Exception:  # a broken callback or model must not kill listening
                    logger.exception("hotword: scoring a window failed")
                finally:
                    self._busy = False

    def _score(self, audio: Int16Samples) -> tuple[float, float] | None:
        """(confidence, margin) of one window, or ``None`` when it is too quiet to score."""
        floats = audio.astype(np.float32) * np.float32(1.0 / 32768.0) + _DITHER
        frame = SAMPLE_RATE // 100
        frames = floats.reshape(-1, frame)
        loudest = float(np.sqrt(np.max(np.einsum("ij,ij->i", frames, frames)) / frame))
        if 20.0 * math.log10(max(loudest, 1e-9)) < self.gate_dbfs:
            self.windows_gated += 1
            return None
        self.windows_scored += 1
        return self.reference.scores(self._model.embed(floats))

    def _passes(self, scores: tuple[float, float] | None, slack: bool) -> bool:
        if scores is None:
            return False
        confidence, margin = scores
        if slack:
            return (
                confidence >= self.threshold - CONFIRM_SLACK
                and margin >= self.min_margin - CONFIRM_MARGIN_SLACK
            )
        return confidence >= self.threshold and margin >= self.min_margin

    def _relaxing(self, end_sample: int) -> bool:
        last = self._last_detection_end
        return last is not None and end_sample - last < self.relax_samples

    def _handle(self, job: _Job) -> None:
        if job.check == "confirm":
            self._handle_confirm(job)
            return
        scores = self._score(job.audio[self.shift_samples :])
        candidate = self._passes(scores, slack=False) and not self._relaxing(job.end_sample)
        detected = False
        if candidate and scores is not None:
            if self.shift_samples == 0:
                detected = True
            else:
                earlier = self._score(job.audio[:WINDOW_SAMPLES])
                self._report_score(job.end_sample - self.shift_samples, earlier, False, "confirm")
                if self._passes(earlier, slack=True):
                    detected = True
                else:
                    self._candidate = (job.end_sample, scores[0])
                    self._confirm_at.append(job.end_sample + self.shift_samples)
        self._report_score(job.end_sample, scores, candidate, "window", detected)
        if detected and scores is not None:
            self._detect(job.end_sample, scores[0])

    def _handle_confirm(self, job: _Job) -> None:
        pending, self._candidate = self._candidate, None
        if pending is None or self._relaxing(job.end_sample):
            return
        scores = self._score(job.audio[self.shift_samples :])
        detected = self._passes(scores, slack=True)
        self._report_score(job.end_sample, scores, False, "confirm", detected)
        if detected and scores is not None:
            self._detect(job.end_sample, max(pending[1], scores[0]))

    def _detect(self, end_sample: int, confidence: float) -> None:
        self._last_detection_end = end_sample
        self._candidate = None
        detection = Detection(self.reference.name, confidence, end_sample / SAMPLE_RATE)
        logger.info("hotword %r heard (confidence %.3f)", detection.name, confidence)
        if self.on_detect is not None:
            self.on_detect(detection)

    def _report_score(
        self,
        end_sample: int,
        scores: tuple[float, float] | None,
        candidate: bool,
        check: str,
        detected: bool = False,
    ) -> None:
        if self.on_score is None:
            return
        confidence, margin = scores if scores is not None else (None, None)
        self.on_score(
            WindowScore(end_sample / SAMPLE_RATE, confidence, margin, candidate, detected, check)
        )
