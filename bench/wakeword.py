"""Hotword detection ("hey eleven"): held-out voices, near misses, continuous speech, CPU.

Everything is fed through the real :class:`~voicedesk.audio.wakeword.HotwordDetector`
(its default settings and the shipped reference) as 16 kHz frames, in audio time:

- detection: the hotword said by voices never used to build the default reference
  (``HELD_OUT_SPEAKERS``: 4 other espeak-ng accents x 5 other variants; and, where
  Debian's ``flite`` is installed, ``FLITE_SPEAKERS``, another synthesiser) in 3
  intonations, each in a quiet room (noise at -65 dBFS) and with pink noise 15 dB
  under the speech. A clip counts as detected when a detection lands between its
  start and 1.6 s after its end;
- near misses: the same voices saying sound-alikes: the issue's phrases ("the eleventh",
  "hey Evan", "eleven", "hey devon", ...; the reference was also built against these,
  said by its own voices) and others it never saw ("hey Evelyn", "any lemon", ...);
- continuous speech: ``--minutes`` (15) of sentences from a generator, read by the
  held-out voices one after another with short pauses; every detection is false;
- CPU: % of one core used by the process while frames arrive at real-time pace
  (``--cpu-seconds`` of continuous speech, then of a quiet room);
- cold start: a new Python process imports the package, loads the model and the
  reference and scores its first window.

Audio is synthesised once and cached in ``build/wakeword/``. ``--sweep`` also scores
every 0.25 s window once and replays the detector's decisions for a grid of thresholds
and margins (how the shipped settings were chosen).

- end of the phrase to "connected": where PulseAudio's null sinks run
  (``eval "$(scripts/pulse-null-sinks)"``), ``--connect-trials`` (10) times the whole
  hands-free loop with the local demo agent, as the app runs it
  (``voicedesk.handsfree.time_to_connected``): espeak-ng says "hey eleven" into the
  microphone's sink in five voices in turn, the real audio engine hears it, the loop
  chimes and connects. A phrase not heard in 3 s is a miss and is said again.

Run: ``.venv/bin/python bench/wakeword.py`` (about 4 minutes on 2 cores; the first run
synthesises the audio, half a minute more; ``--sweep`` about 4 minutes more).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import itertools
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from voicedesk.audio.wakeword import (  # noqa: E402
    HotwordDetector,
    WindowScore,
    default_reference,
    shared_model,
    synth,
)
from voicedesk.audio.wakeword import detector as detector_module  # noqa: E402
from voicedesk.handsfree import ConnectTimes, time_to_connected  # noqa: E402

RATE = 16000
CACHE = ROOT / "build" / "wakeword"
QUIET_NOISE_DBFS = -65.0
NOISY_SNR_DB = 15.0
TAIL_S = 1.6  # a detection this long after a clip's end still belongs to it
CHUNK = 320  # 20 ms, as the engine delivers

TARGET_DETECTION = 85.0
TARGET_NEAR_MISS = 10.0
TARGET_FALSE_PER_15_MIN = 0
TARGET_CPU = 6.0
TARGET_CONNECT_MS = 1500.0
#: The voices that say the hotword into the microphone for the connect trials.
CONNECT_VOICES = ("en-us", "en-gb", "en-us+m3", "en-gb-x-rp+f2", "en-029")

HOTWORD_TEXTS = ("hey eleven", "Hey, Eleven!", "Hey eleven.")
#: The issue's sound-alikes (the default reference was built against these, said by its
#: own voices: see synth.TRAINING_NEAR_MISSES).
NEAR_MISSES_SEEN = ("the eleventh", "hey Evan", "eleven", "hey devon", "hey, Kevin", "seven eleven")
#: Sound-alikes the reference never saw.
NEAR_MISSES_UNSEEN = (
    *("hey Evelyn", "hey melon", "okay seven", "any lemon", "hey, Leonard", "a lemon"),
    *("hey, Ellie", "heavenly", "hey, Everest", "the seventh", "hey, Levi", "eleven years"),
)

Int16 = npt.NDArray[np.int16]


# --------------------------------------------------------------------------- audio


def pink_noise(samples: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Unit-RMS 1/f noise (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / RATE)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    noise = np.fft.irfft(spectrum, samples)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def active_rms(clip: Int16) -> float:
    x = clip.astype(np.float64) / 32768.0
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    levels = np.sqrt(np.mean(frames**2, axis=1))
    loud = levels[levels >= levels.max() * 0.1]
    return float(np.sqrt(np.mean(loud**2))) if loud.size else 0.0


@dataclass
class Stream:
    """Clips laid end to end over background noise; ``spans`` are (start, end) samples."""

    audio: Int16
    spans: list[tuple[int, int]]
    labels: list[str]

    @property
    def seconds(self) -> float:
        return self.audio.size / RATE


def lay_out(
    clips: list[Int16], labels: list[str], noisy: list[bool], seed: int, gaps: tuple[float, float]
) -> Stream:
    """Each clip after a pause of ``gaps`` seconds (random within, seeded), with
    quiet-room noise throughout and pink noise under the clips marked noisy."""
    rng = np.random.default_rng(seed)
    pieces: list[npt.NDArray[np.float64]] = []
    spans = []
    position = 0
    for clip, is_noisy in zip(clips, noisy, strict=True):
        lead = int(rng.uniform(*gaps) * RATE)
        speech = clip.astype(np.float64) / 32768.0
        body = np.concatenate([np.zeros(lead), speech])
        if is_noisy:
            level = active_rms(clip) * 10 ** (-NOISY_SNR_DB / 20)
            body += pink_noise(body.size, rng) * level
        pieces.append(body)
        spans.append((position + lead, position + lead + speech.size))
        position += body.size
    tail = np.zeros(int(TAIL_S * RATE) + RATE)
    pieces.append(tail)
    audio = np.concatenate(pieces)
    audio += rng.standard_normal(audio.size) * 10 ** (QUIET_NOISE_DBFS / 20)
    return Stream(np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16), spans, labels)


def speakers(include_flite: bool) -> list[synth.Speaker]:
    return [*synth.HELD_OUT_SPEAKERS, *(synth.FLITE_SPEAKERS if include_flite else ())]


SUBJECTS = (
    *("the old farmer", "my neighbour", "our teacher", "a young doctor", "the committee"),
    *("her brother", "the little girl", "a tired traveller", "the new manager", "everyone"),
    *("the cat", "a friend of mine", "the musicians", "the pilot", "my grandmother"),
)
VERBS = (
    *("painted", "carried", "forgot", "discovered", "explained", "repaired", "wanted"),
    *("borrowed", "described", "ordered", "noticed", "remembered", "cleaned", "sold"),
)
OBJECTS = (
    *("a wooden table", "the blue bicycle", "two baskets of apples", "the broken clock"),
    *("a long letter", "the garden gate", "some fresh bread", "the map of the city"),
    *("a warm blanket", "the kitchen window", "three paper boats", "the red umbrella"),
)
PLACES = (
    *("near the river", "after lunch", "on a rainy morning", "behind the station"),
    *("before the storm", "at the market", "in the small village", "during the holidays"),
    *("under the bridge", "at the end of the street", "last winter", "in the library"),
)
EXTRAS = (
    "and nobody said a word",
    "because it was getting late",
    "while the children were playing outside",
    "although the shop was already closed",
    "so we had to walk home",
    "which surprised all of us",
    "and then it started to snow",
    "but the weather stayed calm",
    "at about half past four",
    "as the sun went down over the hills",
)
QUESTIONS = (
    "Do you think we should leave a little earlier tomorrow?",
    "Where did you put the keys to the back door?",
    "Have you ever seen so many birds in one place?",
    "What would you like to have for dinner tonight?",
    "How long does it take to get to the coast by train?",
    "Could you pass me the salt and the pepper, please?",
)


def sentences(count: int, seed: int) -> list[str]:
    """Ordinary sentences, deterministic: statements from templates and some questions."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.15:
            out.append(rng.choice(QUESTIONS))
            continue
        text = (
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}"
        )
        if rng.random() < 0.6:
            text += f", {rng.choice(EXTRAS)}"
        out.append(text[0].upper() + text[1:] + ".")
    return out


@dataclass
class Corpus:
    positives: Stream
    near_misses: Stream
    speech: Stream


def build_corpus(minutes: float, include_flite: bool, progress: Callable[[str], None]) -> Corpus:
    voices = speakers(include_flite)
    key = repr(([s.label for s in voices], minutes, HOTWORD_TEXTS, NEAR_MISSES_SEEN))
    key += repr((NEAR_MISSES_UNSEEN, QUIET_NOISE_DBFS, NOISY_SNR_DB, "v2"))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = CACHE / f"bench-audio-{digest}.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        streams = []
        for name in ("positives", "near_misses", "speech"):
            spans = [tuple(int(v) for v in row) for row in data[f"{name}_spans"]]
            labels = [str(v) for v in data[f"{name}_labels"]]
            streams.append(Stream(data[f"{name}_audio"], spans, labels))  # type: ignore[arg-type]
        progress(f"audio: cached ({path.relative_to(ROOT)})")
        return Corpus(*streams)

    progress("synthesising the hotword clips")
    clips, labels, noisy = [], [], []
    for speaker in voices:
        for text in HOTWORD_TEXTS:
            clip = speaker.say(text)
            for is_noisy in (False, True):
                clips.append(clip)
                labels.append(f"{speaker.label}|{text}|{'noisy' if is_noisy else 'quiet'}")
                noisy.append(is_noisy)
    positives = lay_out(clips, labels, noisy, seed=1, gaps=(2.3, 3.0))

    progress("synthesising the near misses")
    clips, labels = [], []
    for speaker in voices:
        for text in (*NEAR_MISSES_SEEN, *NEAR_MISSES_UNSEEN):
            clips.append(speaker.say(text))
            kind = "seen" if text in NEAR_MISSES_SEEN else "unseen"
            labels.append(f"{speaker.label}|{text}|{kind}")
    near = lay_out(clips, labels, [False] * len(clips), seed=2, gaps=(2.3, 3.0))

    progress(f"synthesising {minutes:g} minutes of continuous speech")
    clips, labels = [], []
    total = 0
    texts = iter(sentences(10_000, seed=3))
    for speaker in itertools.cycle(voices):
        if total >= minutes * 60 * RATE:
            break
        text = next(texts)
        clip = speaker.say(text)
        clips.append(clip)
        labels.append(f"{speaker.label}|{text}")
        total += clip.size + int(0.35 * RATE)
    speech = lay_out(clips, labels, [False] * len(clips), seed=4, gaps=(0.15, 0.55))

    CACHE.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for name, stream in (("positives", positives), ("near_misses", near), ("speech", speech)):
        arrays[f"{name}_audio"] = stream.audio
        arrays[f"{name}_spans"] = np.asarray(stream.spans, dtype=np.int64)
        arrays[f"{name}_labels"] = np.asarray(stream.labels)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return Corpus(positives, near, speech)


# --------------------------------------------------------------------------- running the detector


@dataclass
class Run:
    detections: list[float] = field(default_factory=list)  # audio time, s
    scores: list[WindowScore] = field(default_factory=list)
    seconds: float = 0.0


def feed_offline(stream: Stream, make: Callable[..., HotwordDetector], keep_scores: bool) -> Run:
    """The whole stream through a detector as fast as it scores (never dropping a window)."""
    run = Run()
    lock = threading.Lock()

    def on_detect(d: object) -> None:
        with lock:
            run.detections.append(d.audio_time_s)  # type: ignore[attr-defined]

    def on_score(s: WindowScore) -> None:
        if keep_scores:
            with lock:
                run.scores.append(s)

    detector = make(on_detect=on_detect, on_score=on_score)
    try:
        for start in range(0, stream.audio.size, CHUNK):
            detector.feed(stream.audio[start : start + CHUNK])
            while detector.pending_windows >= 3:
                time.sleep(0.002)
        while detector.pending_windows:
            time.sleep(0.002)
        assert detector.dropped_windows == 0
    finally:
        detector.close()
    run.seconds = stream.seconds
    return run


def hits(stream: Stream, detections: Iterable[float]) -> list[bool]:
    times = sorted(detections)
    out = []
    for start, end in stream.spans:
        lo, hi = start / RATE, end / RATE + TAIL_S
        out.append(any(lo <= t <= hi for t in times))
    return out


def cpu_while_listening(stream: Stream, seconds: float) -> float:
    """% of one core (process CPU time / wall time) while ``seconds`` of ``stream`` arrive
    at real-time pace in 20 ms chunks, as from the engine's DSP thread."""
    detector = HotwordDetector(default_reference())
    try:
        chunks = min(stream.audio.size // CHUNK, int(seconds * RATE / CHUNK))
        for i in range(25):  # warm up: one window's worth before the clock starts
            detector.feed(stream.audio[i * CHUNK : (i + 1) * CHUNK])
        time.sleep(0.2)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(25, chunks):
            detector.feed(stream.audio[i * CHUNK : (i + 1) * CHUNK])
            wait = wall0 + (i - 24) * CHUNK / RATE - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        cpu1, wall1 = time.process_time(), time.perf_counter()
    finally:
        detector.close()
    return 100.0 * (cpu1 - cpu0) / (wall1 - wall0)


COLD_START = """
import time
t0 = time.perf_counter()
import numpy as np
from voicedesk.audio.wakeword import HotwordDetector, default_reference
t1 = time.perf_counter()
reference = default_reference()
detector = HotwordDetector(reference)
t2 = time.perf_counter()
rng = np.random.default_rng(0)
detector._score((rng.standard_normal(24000) * 3000).astype(np.int16))
t3 = time.perf_counter()
detector.close()
print((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000)
"""


def connect_times(trials: int) -> ConnectTimes | str:
    """End of the spoken phrase -> "connected" through the real loop and audio devices;
    a sentence instead where the null sinks are not running."""
    sys.path.insert(0, str(ROOT))
    from tests.audio.pulse import play_into, pulse_ready

    if not pulse_ready():
        return 'not measured: no PulseAudio null sinks (eval "$(scripts/pulse-null-sinks)")'
    voices = itertools.cycle(CONNECT_VOICES)
    lead = np.zeros(int(0.3 * RATE), dtype=np.int16)  # a sink starts a stream with a gap

    async def speak() -> float:
        phrase = synth.espeak("hey eleven", next(voices))
        # espeak-ng ends a phrase with ~0.3 s of silence: the phrase ends at its last
        # sample above 1 % of its peak.
        loud = np.nonzero(np.abs(phrase.astype(np.int32)) > 0.01 * np.abs(phrase).max())[0]
        player = play_into(np.concatenate([lead, phrase]), RATE)
        await asyncio.to_thread(player.wait, 30)
        # The player feeds the sink on the wall clock from player.started, 20 ms a block.
        return player.started + float(lead.size + loud[-1] + 1) / RATE

    return asyncio.run(time_to_connected(speak, trials=trials))


def cold_start(runs: int) -> tuple[float, float, float]:
    """Medians (ms): import, model + reference load, first window scored."""
    results = []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD_START], capture_output=True, text=True, check=True, env=env
        )
        results.append([float(v) for v in out.stdout.split()])
    medians = [statistics.median(column) for column in zip(*results, strict=True)]
    return medians[0], medians[1], medians[2]


# --------------------------------------------------------------------------- the sweep


@dataclass
class Grid:
    """Window scores every 0.25 s (confidence, margin; NaN where gated) of one stream."""

    times: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]
    margin: npt.NDArray[np.float64]


def score_grid(stream: Stream) -> Grid:
    reference = default_reference()

    def make(**callbacks: object) -> HotwordDetector:
        return HotwordDetector(
            reference,
            threshold=0.01,
            min_margin=-9.0,
            hop_s=0.25,
            confirm_shift_s=0.0,
            relax_s=0.0,
            **callbacks,  # type: ignore[arg-type]
        )

    run = feed_offline(stream, make, keep_scores=True)
    rows = sorted((s.audio_time_s, s.confidence, s.margin) for s in run.scores)
    times = np.array([r[0] for r in rows])
    conf = np.array([np.nan if r[1] is None else r[1] for r in rows])
    margin = np.array([np.nan if r[2] is None else r[2] for r in rows])
    return Grid(times, conf, margin)


def replay(
    grid: Grid,
    threshold: float,
    min_margin: float,
    confirm: bool,
    hop_steps: int = 2,
    phase: int = 0,
) -> list[float]:
    """The detector's decisions on a grid of scores (hop = hop_steps x 0.25 s), as in
    HotwordDetector._handle: candidate, then the window 0.25 s earlier, else later."""
    slack, mslack = detector_module.CONFIRM_SLACK, detector_module.CONFIRM_MARGIN_SLACK
    relax = detector_module.RELAX_S
    c, m = grid.confidence, grid.margin
    strict = (c >= threshold) & (m >= min_margin)
    loose = (c >= threshold - slack) & (m >= min_margin - mslack)
    out: list[float] = []
    last = -1e9
    for i in range(phase, len(c), hop_steps):
        t = grid.times[i]
        if not strict[i] or t - last < relax:
            continue
        if not confirm or (i > 0 and loose[i - 1]):
            out.append(t)
            last = t
        elif i + 1 < len(c) and loose[i + 1]:
            out.append(grid.times[i + 1])
            last = grid.times[i + 1]
    return out


def sweep(corpus: Corpus, progress: Callable[[str], None]) -> None:
    grids = {}
    for name in ("positives", "near_misses", "speech"):
        progress(f"sweep: scoring every 0.25 s of {name}")
        grids[name] = score_grid(getattr(corpus, name))
    print("\nthreshold  margin  confirm | detected %  near-miss %  false in speech")
    for threshold, margin, confirm in itertools.product(
        (0.66, 0.68, 0.70, 0.72, 0.74, 0.76), (-9.0, 0.0, 0.02, 0.03, 0.04, 0.06), (False, True)
    ):
        results = []
        for phase in (0, 1):
            det = np.mean(
                hits(
                    corpus.positives,
                    replay(grids["positives"], threshold, margin, confirm, phase=phase),
                )
            )
            near = np.mean(
                hits(
                    corpus.near_misses,
                    replay(grids["near_misses"], threshold, margin, confirm, phase=phase),
                )
            )
            false = len(replay(grids["speech"], threshold, margin, confirm, phase=phase))
            results.append((det, near, false))
        det, near, false = (float(np.mean([r[k] for r in results])) for k in range(3))
        margin_text = "  none" if margin < -1 else f"{margin:6.2f}"
        second = "yes" if confirm else "no"
        print(
            f"  {threshold:.2f}   {margin_text}  {second:>5} | "
            f"{det * 100:9.1f}  {near * 100:11.1f}  {false:8.1f}"
        )


# --------------------------------------------------------------------------- main


def connect_row(connect: ConnectTimes | str) -> tuple[str, str, str, str]:
    what = "end of the phrase -> connected, ms"
    if isinstance(connect, str):
        return (what, connect, f"<= {TARGET_CONNECT_MS:.0f}", "")
    ms = sorted(connect.ms)
    return (
        f"{what}: median (min-max; {len(ms)} trials, {connect.misses} phrases missed)",
        f"{statistics.median(ms):.0f} ({ms[0]:.0f}-{ms[-1]:.0f})",
        f"<= {TARGET_CONNECT_MS:.0f}",
        ok(max(ms) <= TARGET_CONNECT_MS),
    )


def ok(passed: bool) -> str:
    return "yes" if passed else "NO"


def breakdown(stream: Stream, hit: list[bool], field_index: int) -> dict[str, tuple[int, int]]:
    groups: dict[str, list[bool]] = {}
    for label, h in zip(stream.labels, hit, strict=True):
        groups.setdefault(label.split("|")[field_index], []).append(h)
    return {k: (sum(v), len(v)) for k, v in groups.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="continuous speech (15)")
    parser.add_argument("--cpu-seconds", type=float, default=30.0, help="real-time CPU run (30)")
    parser.add_argument("--no-flite", action="store_true", help="espeak-ng held-out voices only")
    parser.add_argument("--sweep", action="store_true", help="also replay a grid of settings")
    parser.add_argument("--verbose", action="store_true", help="list misses and false triggers")
    parser.add_argument(
        "--connect-trials", type=int, default=10, help="hotword -> connected trials (10; 0: none)"
    )
    args = parser.parse_args()
    include_flite = not args.no_flite and synth.flite_available()

    def progress(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    began = time.monotonic()
    corpus = build_corpus(args.minutes, include_flite, progress)
    reference = default_reference()
    shared_model()

    def make(**callbacks: object) -> HotwordDetector:
        return HotwordDetector(reference, **callbacks)  # type: ignore[arg-type]

    progress(
        f"detection: {len(corpus.positives.spans)} hotword clips "
        f"({corpus.positives.seconds / 60:.1f} min of audio)"
    )
    pos_run = feed_offline(corpus.positives, make, keep_scores=False)
    pos_hits = hits(corpus.positives, pos_run.detections)
    progress(f"near misses: {len(corpus.near_misses.spans)} clips")
    near_run = feed_offline(corpus.near_misses, make, keep_scores=False)
    near_hits = hits(corpus.near_misses, near_run.detections)
    progress(
        f"continuous speech: {corpus.speech.seconds / 60:.1f} min, "
        f"{len(corpus.speech.spans)} sentences"
    )
    speech_run = feed_offline(corpus.speech, make, keep_scores=False)
    progress(f"CPU: {args.cpu_seconds:g} s of speech, then of a quiet room, at real-time pace")
    cpu_speech = cpu_while_listening(corpus.speech, args.cpu_seconds)
    quiet = Stream(corpus.positives.audio[: corpus.positives.spans[0][0]], [], [])
    quiet_audio = np.tile(
        quiet.audio, int(np.ceil(args.cpu_seconds * RATE / max(1, quiet.audio.size))) + 1
    )
    cpu_quiet = cpu_while_listening(Stream(quiet_audio, [], []), args.cpu_seconds)
    progress("cold start: 3 new processes")
    import_ms, load_ms, first_ms = cold_start(3)
    connect: ConnectTimes | str = "not measured (--connect-trials 0)"
    if args.connect_trials > 0:
        progress(f"end of phrase -> connected: {args.connect_trials} trials, real audio")
        connect = connect_times(args.connect_trials)

    detected = 100.0 * np.mean(pos_hits)
    near_pct = 100.0 * np.mean(near_hits)
    false_speech = len(speech_run.detections)
    minutes = corpus.speech.seconds / 60
    per_hour = false_speech / (corpus.speech.seconds / 3600)

    def pct(group: dict[str, tuple[int, int]], key: str) -> str:
        hit, total = group.get(key, (0, 0))
        return f"{100 * hit / total:.1f} %" if total else "-"

    engines = breakdown(corpus.positives, pos_hits, 0)
    engine_hits = {"espeak": (0, 0), "flite": (0, 0)}
    for label, (hit, total) in engines.items():
        kind = label.split(":")[0]
        old = engine_hits[kind]
        engine_hits[kind] = (old[0] + hit, old[1] + total)
    noise = breakdown(corpus.positives, pos_hits, 2)
    seen = breakdown(corpus.near_misses, near_hits, 2)
    phrases = breakdown(corpus.near_misses, near_hits, 1)

    voices = len(speakers(include_flite))
    d = detector_module
    rows = [
        (
            f"held-out voices detected ({voices} voices, {len(pos_hits)} clips)",
            f"{detected:.1f} %",
            f">= {TARGET_DETECTION:.0f} %",
            ok(detected >= TARGET_DETECTION),
        ),
        (
            "- espeak-ng held-out voices / flite voices",
            f"{pct(engine_hits, 'espeak')} / {pct(engine_hits, 'flite')}",
            "",
            "",
        ),
        (
            f"- quiet room / pink noise {NOISY_SNR_DB:.0f} dB under the speech",
            f"{pct(noise, 'quiet')} / {pct(noise, 'noisy')}",
            "",
            "",
        ),
        (
            f"false triggers in continuous speech ({minutes:.1f} min)",
            f"{false_speech} ({per_hour:.1f} per hour)",
            "0 in >= 15 min",
            ok(false_speech == 0 and minutes >= 15),
        ),
        (
            f"near-miss clips triggering ({len(near_hits)} clips)",
            f"{near_pct:.1f} %",
            f"<= {TARGET_NEAR_MISS:.0f} %",
            ok(near_pct <= TARGET_NEAR_MISS),
        ),
        (
            "- the issue's phrases / phrases never trained against",
            f"{pct(seen, 'seen')} / {pct(seen, 'unseen')}",
            "",
            "",
        ),
        (
            "CPU while listening, % of a core: speech / quiet room",
            f"{cpu_speech:.1f} / {cpu_quiet:.1f}",
            f"<= {TARGET_CPU:.0f}",
            ok(cpu_speech <= TARGET_CPU),
        ),
        (
            "cold start, ms: import / model + reference / first window",
            f"{import_ms:.0f} / {load_ms:.0f} / {first_ms:.0f}",
            "",
            "",
        ),
        connect_row(connect),
    ]
    print()
    print(
        f"Hotword benchmark, {datetime.date.today().isoformat()}: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{'espeak-ng + flite' if include_flite else 'espeak-ng'} voices"
    )
    print(
        f"Settings: threshold {reference.threshold}, min margin {reference.min_margin}, "
        f"hop {d.HOP_S} s, window {d.WINDOW_S} s, second check +-{d.CONFIRM_SHIFT_S} s, "
        f"relaxation {d.RELAX_S} s, gate {d.ENERGY_GATE_DBFS} dBFS"
    )
    print()
    print("| figure | measured | target | met |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        "Near misses by phrase (clips triggering / clips): "
        + ", ".join(f"{k!r} {v[0]}/{v[1]}" for k, v in phrases.items())
    )
    if args.verbose:
        print("Missed hotword clips:")
        for label, h in zip(corpus.positives.labels, pos_hits, strict=True):
            if not h:
                print(f"  {label}")
        print("Near misses that triggered:")
        for label, h in zip(corpus.near_misses.labels, near_hits, strict=True):
            if h:
                print(f"  {label}")
        for t in speech_run.detections:
            index = max(i for i, (s, _) in enumerate(corpus.speech.spans) if s / RATE <= t + 1.5)
            print(f"False trigger at {t:.1f} s: {corpus.speech.labels[index]}")
    if args.sweep:
        sweep(corpus, progress)
    print(f"\n(benchmark took {time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
