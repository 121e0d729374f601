"""The hotword detector: the model, the built-in "hey eleven", the detector's threading
and audio-time rules, training from recordings, and where the model is found.

The model is not in the repository (scripts/fetch-hotword-model fetches it). Without
it these tests skip on a developer's machine, and fail in CI (CI=true), where setup
must have fetched it.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import scaled
from voicedesk.audio.wakeword import (
    Detection,
    HotwordDetector,
    HotwordError,
    HotwordModelError,
    HotwordReference,
    WindowScore,
    build_reference,
    default_reference,
    find_model,
    load_reference,
    self_check,
    shared_model,
    synth,
    train_hotword,
)
from voicedesk.audio.wakeword import model as model_module
from voicedesk.audio.wakeword.features import frame_count, log_mel, mel_filterbank
from voicedesk.audio.wakeword.model import EMBEDDING_SIZE, MODEL_ENV, WINDOW_SAMPLES
from voicedesk.audio.wakeword.wav import WavError, parse_wav

RATE = 16000
#: A voice never used to build the default reference (an accent and a variant the
#: reference has not heard).
HELD_OUT = synth.Speaker("espeak", "en-gb-x-rp+m1", 150, 40)


def _model_or_skip() -> None:
    try:
        find_model()
    except HotwordModelError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI must run scripts/fetch-hotword-model; scripts/setup does)")
        pytest.skip(f"hotword model not installed: run scripts/fetch-hotword-model ({exc})")


@pytest.fixture(scope="module")
def model_ready() -> None:
    _model_or_skip()


@pytest.fixture(scope="module")
def espeak_ready() -> None:
    if not synth.espeak_available():
        pytest.skip("espeak-ng is not installed (scripts/setup installs it)")


def silence(seconds: float, level: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(int(seconds * 1000))
    return np.round(rng.standard_normal(int(seconds * RATE)) * level).astype(np.int16)


def feed_all(detector: HotwordDetector, audio: np.ndarray, chunk: int = 320) -> None:
    """Feed in 20 ms chunks, as the engine's DSP thread does, as fast as the worker keeps
    up (so no window is dropped), then wait until every window is scored."""
    for start in range(0, audio.size, chunk):
        detector.feed(audio[start : start + chunk])
        while detector.pending_windows >= 3:
            time.sleep(0.002)
    deadline = time.monotonic() + scaled(10)
    while detector.pending_windows and time.monotonic() < deadline:
        time.sleep(0.002)


@pytest.fixture
def detections() -> Iterator[list[Detection]]:
    return []


# --------------------------------------------------------------------------- features and model


def test_features_have_the_models_shape_and_are_finite() -> None:
    audio = np.random.default_rng(0).standard_normal(WINDOW_SAMPLES) * 0.1
    features = log_mel(audio)
    assert features.shape == (frame_count(WINDOW_SAMPLES), 64) == (149, 64)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(log_mel(np.zeros(WINDOW_SAMPLES))))
    bank = mel_filterbank()
    assert bank.shape == (64, 257)
    assert np.all(bank.sum(axis=1) > 0)  # no empty filter


def test_louder_audio_shifts_features_evenly() -> None:
    """A louder speaker adds a constant to every log energy (2 log 4 for 4x the level)."""
    audio = np.random.default_rng(1).standard_normal(WINDOW_SAMPLES) * 0.01
    difference = log_mel(audio * 4) - log_mel(audio)
    assert np.allclose(difference, 2 * np.log(4), atol=1e-4)


def test_model_embeds_a_window_as_a_unit_vector(model_ready: None) -> None:
    model = shared_model()
    rng = np.random.default_rng(2)
    window = rng.standard_normal(WINDOW_SAMPLES).astype(np.float32) * 0.05
    a = model.embed(window)
    assert a.shape == (EMBEDDING_SIZE,)
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-4
    assert float(a @ model.embed(window)) == pytest.approx(1.0, abs=1e-6)  # deterministic
    # The model normalises its input: the same sound 12 dB louder embeds the same.
    assert float(a @ model.embed(window * 4)) > 0.999
    with pytest.raises(ValueError, match="24000"):
        model.embed(np.zeros(100, dtype=np.float32))


def test_self_check_loads_the_model_and_scores_silence(model_ready: None) -> None:
    check = self_check(verify_checksum=True)
    assert check.sha256_ok is True
    assert check.silence_confidence < default_reference().threshold  # type: ignore[operator]
    assert "loaded" in check.describe()


def test_model_path_from_the_environment(
    model_ready: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = find_model()
    monkeypatch.setenv(MODEL_ENV, str(real.parent))  # a folder holding it
    assert find_model() == real
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "nothing.onnx"))
    with pytest.raises(HotwordModelError, match="fetch-hotword-model"):
        find_model()


def test_missing_model_is_a_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setattr(model_module, "PACKAGE_MODEL_DIR", tmp_path / "package")
    monkeypatch.setenv("VOICEDESK_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(HotwordModelError, match=r"not installed .*scripts/fetch-hotword-model"):
        find_model()


def test_a_file_that_is_not_the_model_is_a_sentence(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(HotwordModelError, match="could not be loaded"):
        model_module.EmbeddingModel(bogus)


# --------------------------------------------------------------------------- the default hotword


def test_default_reference_ships_with_its_settings() -> None:
    reference = default_reference()
    assert reference.name == "hey eleven"
    assert reference.embeddings.shape[1] == EMBEDDING_SIZE
    assert reference.negatives is not None
    assert reference.negatives.shape[1] == EMBEDDING_SIZE
    assert reference.threshold is not None
    assert 0.5 < reference.threshold < 1
    assert np.allclose(np.linalg.norm(reference.embeddings, axis=1), 1.0, atol=1e-5)
    assert load_reference("hey eleven").embeddings.shape == reference.embeddings.shape
    assert load_reference("Hey-Eleven").name == "hey eleven"


def test_hey_eleven_by_a_held_out_voice_is_detected(
    model_ready: None, espeak_ready: None, detections: list[Detection]
) -> None:
    # Digital silence around it, as a sound server delivers before and after a sound.
    quiet = np.zeros(int(1.2 * RATE), np.int16)
    audio = np.concatenate([quiet, HELD_OUT.say("hey eleven"), quiet, quiet])
    scores: list[WindowScore] = []
    with HotwordDetector(
        default_reference(), on_detect=detections.append, on_score=scores.append
    ) as detector:
        feed_all(detector, audio)
    assert len(detections) == 1, [s for s in scores if s.confidence is not None]
    detection = detections[0]
    assert detection.name == "hey eleven"
    assert detection.confidence >= default_reference().threshold  # type: ignore[operator]
    assert 1.2 < detection.audio_time_s < audio.size / RATE


def test_silence_and_ordinary_speech_do_not_trigger(
    model_ready: None, espeak_ready: None, detections: list[Detection]
) -> None:
    speech = synth.espeak(
        "The meeting starts at noon, so please bring the reports and a little coffee.",
        "en-gb-x-rp+f3",
        170,
        50,
    )
    audio = np.concatenate([silence(3.0), np.zeros(RATE, np.int16), speech, silence(1.0)])
    with HotwordDetector(default_reference(), on_detect=detections.append) as detector:
        feed_all(detector, audio)
        assert detector.windows_gated >= 4  # the silent part was not even scored
    assert detections == []


@pytest.mark.parametrize(("gap_s", "expected"), [(0.5, 1), (3.0, 2)])
def test_relaxation_is_counted_in_audio_time(
    model_ready: None, espeak_ready: None, gap_s: float, expected: int, detections: list[Detection]
) -> None:
    """Two hotwords 0.5 s apart are one detection; 3 s apart, two; fed ~20x faster than
    real time, so wall-clock relaxation would have merged them."""
    hotword = HELD_OUT.say("hey eleven")
    audio = np.concatenate([silence(1.2), hotword, silence(gap_s), hotword, silence(2.0)])
    with HotwordDetector(default_reference(), on_detect=detections.append) as detector:
        feed_all(detector, audio)
    assert len(detections) == expected, detections
    if expected == 2:
        assert detections[1].audio_time_s - detections[0].audio_time_s >= 2.0


# --------------------------------------------------------------------------- threading


class SlowModel:
    """Stands in for the model: takes ``delay`` per window; loud windows embed as the
    reference's first vector (a hotword), quiet ones as its opposite."""

    def __init__(self, reference: HotwordReference, delay: float) -> None:
        self.reference = reference
        self.delay = delay
        self.calls = 0

    def embed(self, window: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(self.delay)
        loud = float(np.abs(window).max()) > 0.3
        vector = self.reference.embeddings[0]
        return vector if loud else -vector


def burst(seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 20000).astype(np.int16)


def plain_reference() -> HotwordReference:
    vectors = np.eye(4, EMBEDDING_SIZE, dtype=np.float32)
    return HotwordReference("beep", vectors)


def test_feed_never_blocks_on_a_slow_scorer() -> None:
    reference = plain_reference()
    slow = SlowModel(reference, delay=0.3)
    detector = HotwordDetector(reference, model=slow, max_pending=2)  # type: ignore[arg-type]
    try:
        audio = np.concatenate([burst()] * 16)  # ~10 s of loud audio: 19 windows
        longest = 0.0
        for start in range(0, audio.size, 320):
            began = time.perf_counter()
            detector.feed(audio[start : start + 320])
            longest = max(longest, time.perf_counter() - began)
        assert longest < scaled(0.02), f"feed() took {longest * 1000:.1f} ms"
        assert detector.dropped_windows > 0  # the oldest windows were dropped, not waited for
    finally:
        detector.close()
    assert not detector.running


def test_close_stops_the_worker_thread() -> None:
    reference = plain_reference()
    detector = HotwordDetector(reference, model=SlowModel(reference, 0.0))  # type: ignore[arg-type]
    assert any(t.name == "voicedesk-hotword" for t in threading.enumerate())
    detector.close()
    detector.close()  # twice is fine
    assert not detector.running
    assert not any(t.name == "voicedesk-hotword" for t in threading.enumerate())
    detector.feed(burst())  # after close: ignored, no error


def test_detector_logic_with_a_stand_in_model(detections: list[Detection]) -> None:
    """Windows are scored every hop in audio time; a loud burst is a hotword to the stand-in;
    the second check runs; relaxation holds for 2 s of audio."""
    reference = plain_reference()
    scores: list[WindowScore] = []
    detector = HotwordDetector(
        reference,
        threshold=0.9,
        model=SlowModel(reference, 0.0),  # type: ignore[arg-type]
        on_detect=detections.append,
        on_score=scores.append,
    )
    with detector:
        quiet = np.zeros(int(2.5 * RATE), np.int16)
        feed_all(detector, np.concatenate([quiet, burst(), quiet, burst(), quiet]))
    assert [round(d.audio_time_s, 2) for d in detections] == [3.0, 6.0]
    assert all(d.confidence == pytest.approx(1.0) for d in detections)
    windows = [s for s in scores if s.check == "window"]
    assert [round(s.audio_time_s, 2) for s in windows[:3]] == [1.5, 2.0, 2.5]
    assert any(s.check == "confirm" for s in scores)
    assert sum(s.confidence is None for s in windows) >= 3  # digital silence is gated


def test_relaxation_suppresses_a_second_burst_within_two_seconds(
    detections: list[Detection],
) -> None:
    reference = plain_reference()
    detector = HotwordDetector(
        reference,
        threshold=0.9,
        model=SlowModel(reference, 0.0),
        on_detect=detections.append,  # type: ignore[arg-type]
    )
    with detector:
        quiet = np.zeros(int(2.0 * RATE), np.int16)
        gap = np.zeros(int(0.2 * RATE), np.int16)
        # The stand-in hears a burst in every window that holds any of it: the second
        # one is in windows up to 1.5 s after the first detection.
        feed_all(detector, np.concatenate([quiet, burst(0.3), gap, burst(0.3), quiet]))
    assert [d.audio_time_s for d in detections] == [2.5]


def test_settings_are_checked() -> None:
    reference = plain_reference()
    stand_in = SlowModel(reference, 0.0)
    with pytest.raises(ValueError, match="window"):
        HotwordDetector(reference, window_s=1.0, model=stand_in)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        HotwordDetector(reference, threshold=1.5, model=stand_in)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- training


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1, kind: str = "pcm16") -> bytes:
    """A WAV file: 16-bit PCM, 24-bit PCM, 32-bit float or 8-bit, any channel count."""
    mono = samples.astype(np.float64) / 32768.0
    frames = np.repeat(mono[:, np.newaxis], channels, axis=1)
    if kind == "pcm16":
        tag, bits, body = 1, 16, np.round(frames * 32767).astype("<i2").tobytes()
    elif kind == "pcm24":
        values = np.round(frames * 8388607).astype("<i4").reshape(-1)
        raw = values.view(np.uint8).reshape(-1, 4)[:, :3]
        tag, bits, body = 1, 24, raw.tobytes()
    elif kind == "float32":
        tag, bits, body = 3, 32, frames.astype("<f4").tobytes()
    else:
        tag, bits, body = 1, 8, np.round(frames * 127 + 128).astype(np.uint8).tobytes()
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    chunks = (
        b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    )
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def resample_to(samples: np.ndarray, rate: int) -> np.ndarray:
    positions = np.arange(int(samples.size * rate / RATE)) * RATE / rate
    return np.interp(positions, np.arange(samples.size), samples.astype(np.float64)).astype(
        np.int16
    )


@pytest.mark.parametrize("kind", ["pcm16", "pcm24", "float32", "pcm8"])
def test_wav_files_of_any_layout_are_read(kind: str) -> None:
    tone = (np.sin(np.arange(4410) / 10) * 16000).astype(np.int16)
    wav = parse_wav(wav_bytes(tone, 44100, channels=2, kind=kind), "take.wav")
    assert (wav.rate, wav.channels) == (44100, 2)
    assert np.allclose(wav.mono(), tone / 32768, atol=0.02)
    assert wav.mono_at(16000).size == 1600


def test_a_file_that_is_not_wav_is_a_sentence() -> None:
    with pytest.raises(WavError, match="not a WAV file"):
        parse_wav(b"ID3\x03 an mp3 file", "take.mp3")


def write_takes(folder: Path, count: int) -> list[Path]:
    """``count`` takes of "hey eleven" in different voices and WAV layouts."""
    folder.mkdir(parents=True, exist_ok=True)
    layouts = [(22050, 1, "pcm16"), (44100, 2, "float32"), (16000, 1, "pcm24"), (48000, 2, "pcm16")]
    voices = ["en-us+m3", "en-gb+f2", "en-us+f4", "en-gb-scotland"]
    paths = []
    for i in range(count):
        rate, channels, kind = layouts[i % len(layouts)]
        take = np.concatenate(
            [silence(0.3), synth.espeak("hey eleven", voices[i % 4]), silence(0.3)]
        )
        path = folder / f"take{i + 1}.wav"
        path.write_bytes(wav_bytes(resample_to(take, rate), rate, channels, kind))
        paths.append(path)
    return paths


def test_train_from_four_recordings_saves_a_reference_that_detects(
    model_ready: None,
    espeak_ready: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    detections: list[Detection],
) -> None:
    monkeypatch.setenv("VOICEDESK_DATA_DIR", str(tmp_path / "data"))
    write_takes(tmp_path / "takes", 4)
    progress: list[tuple[int, int, str]] = []
    reference, path = train_hotword(
        tmp_path / "takes", "my word", progress=lambda *a: progress.append(a)
    )
    assert path == tmp_path / "data" / "hotwords" / "my word.json"
    assert [p[0] for p in progress] == [1, 2, 3, 4]
    assert reference.embeddings.shape == (12, EMBEDDING_SIZE)  # 3 placements each
    loaded = load_reference("my word")
    assert np.allclose(loaded.embeddings, reference.embeddings, atol=0.01)
    assert json.loads(path.read_text())["format"] == "voicedesk-hotword"

    audio = np.concatenate([silence(1.0), HELD_OUT.say("hey eleven"), silence(2.0)])
    with HotwordDetector(loaded, on_detect=detections.append) as detector:
        feed_all(detector, audio)
    assert len(detections) == 1


def test_fewer_than_four_recordings_is_a_sentence(espeak_ready: None, tmp_path: Path) -> None:
    write_takes(tmp_path, 3)
    (tmp_path / "take4.mp3").write_bytes(b"ID3")
    with pytest.raises(HotwordError, match=r"3 WAV recording.*take4.mp3.*at least 4") as info:
        build_reference(tmp_path, "word")
    assert "convert them to WAV" in str(info.value)


def test_silent_short_and_long_recordings_are_sentences(espeak_ready: None, tmp_path: Path) -> None:
    write_takes(tmp_path, 4)
    (tmp_path / "silent.wav").write_bytes(wav_bytes(np.zeros(RATE, np.int16), RATE))
    click = np.concatenate([silence(0.5), np.full(800, 12000, np.int16), silence(0.5)])
    (tmp_path / "click.wav").write_bytes(wav_bytes(click, RATE))
    sentence = synth.espeak("this is a whole sentence rather than a short hotword", "en-us")
    (tmp_path / "sentence.wav").write_bytes(wav_bytes(sentence, RATE))
    (tmp_path / "long.wav").write_bytes(wav_bytes(silence(12.0), RATE))
    with pytest.raises(HotwordError) as info:
        build_reference(tmp_path, "word")
    message = str(info.value)
    assert message.startswith("4 of 8 recordings cannot be used (4 can")
    assert "silent.wav is silent or nearly" in message
    assert "click.wav holds only 0.15 s of sound" in message
    assert "sentence.wav holds" in message
    assert "at most 1.4 s" in message
    assert "long.wav is 12.0 s long" in message


def test_bad_names_and_unknown_hotwords_are_sentences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEDESK_DATA_DIR", str(tmp_path))
    with pytest.raises(HotwordError, match="cannot be a hotword name"):
        build_reference(tmp_path, "../escape")
    with pytest.raises(HotwordError, match=r"no hotword called 'computer'.*hotword train"):
        load_reference("computer")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(HotwordError, match="not valid JSON"):
        load_reference(str(tmp_path / "broken.json"))


def test_efficientword_net_reference_files_load(tmp_path: Path) -> None:
    """Their format: a list of embedding lists and the model type."""
    rows = np.random.default_rng(3).standard_normal((4, EMBEDDING_SIZE))
    path = tmp_path / "alexa_ref.json"
    path.write_text(json.dumps({"embeddings": rows.tolist(), "model_type": "resnet_50_arc"}))
    reference = load_reference(path)
    assert reference.name == "alexa"
    assert reference.negatives is None
    assert reference.threshold is None
    expected = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    assert np.allclose(reference.embeddings, expected, atol=1e-6)
    path.write_text(
        json.dumps({"embeddings": rows.tolist(), "model_type": "first_iteration_siamese"})
    )
    with pytest.raises(HotwordError, match="made for the model"):
        load_reference(path)
