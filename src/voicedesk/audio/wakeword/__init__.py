"""Hands-free: hear a hotword ("hey eleven" out of the box) in the microphone's audio.

Our own runtime for EfficientWord-Net's few-shot approach: log mel features of a 1.5 s
window (:mod:`.features`), its int8 ResNet-50 embedding on onnxruntime (:mod:`.model`,
one thread, no spinning), cosine scores against a reference (:mod:`.reference`), on a
worker thread fed by the audio engine (:mod:`.detector`). No Qt, no asyncio.

    reference = load_reference()              # the built-in "hey eleven"
    detector = HotwordDetector(reference, on_detect=lambda d: ...)
    detector.feed(frames)                     # int16, 16 kHz, from the DSP thread
    detector.close()
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from voicedesk.audio.wakeword.detector import (
    CONFIRM_SHIFT_S,
    DEFAULT_MIN_MARGIN,
    DEFAULT_THRESHOLD,
    ENERGY_GATE_DBFS,
    HOP_S,
    RELAX_S,
    WINDOW_S,
    Detection,
    HotwordDetector,
    WindowScore,
)
from voicedesk.audio.wakeword.listen import listen_and_print_scores
from voicedesk.audio.wakeword.model import (
    MODEL_ENV,
    MODEL_SHA256,
    WINDOW_SAMPLES,
    EmbeddingModel,
    HotwordModelError,
    file_sha256,
    find_model,
    shared_model,
)
from voicedesk.audio.wakeword.paths import DATA_DIR_ENV, hotwords_dir
from voicedesk.audio.wakeword.reference import (
    DEFAULT_NAME,
    MIN_RECORDINGS,
    HotwordError,
    HotwordReference,
    build_reference,
    default_reference,
    load_reference,
    reference_path,
    save_reference,
    saved_hotwords,
    train_hotword,
)

__all__ = [
    "CONFIRM_SHIFT_S",
    "DATA_DIR_ENV",
    "DEFAULT_MIN_MARGIN",
    "DEFAULT_NAME",
    "DEFAULT_THRESHOLD",
    "ENERGY_GATE_DBFS",
    "HOP_S",
    "MIN_RECORDINGS",
    "MODEL_ENV",
    "RELAX_S",
    "WINDOW_S",
    "Detection",
    "EmbeddingModel",
    "HotwordDetector",
    "HotwordError",
    "HotwordModelError",
    "HotwordReference",
    "SelfCheck",
    "WindowScore",
    "build_reference",
    "default_reference",
    "find_model",
    "hotwords_dir",
    "listen_and_print_scores",
    "load_reference",
    "reference_path",
    "save_reference",
    "saved_hotwords",
    "self_check",
    "shared_model",
    "train_hotword",
]


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """What :func:`self_check` found: the model file, load and scoring times, and the
    built-in reference's score of a silent window (far below its threshold)."""

    model_path: str
    load_ms: float
    score_ms: float
    silence_confidence: float
    sha256_ok: bool | None

    def describe(self) -> str:
        digest = {True: ", checksum ok", False: ", CHECKSUM MISMATCH", None: ""}[self.sha256_ok]
        return (
            f"hotword model {self.model_path} loaded in {self.load_ms:.0f} ms{digest}; "
            f"a window scored in {self.score_ms:.0f} ms (silence: {self.silence_confidence:.2f})"
        )


def self_check(verify_checksum: bool = False) -> SelfCheck:
    """Load the model (a fresh session, not the shared one) and the built-in reference,
    and score one window of silence: what ``--self-test`` runs, in a bundle too.

    Raises :class:`HotwordModelError` or :class:`HotwordError` (sentences) on failure;
    also when the checksum (``verify_checksum``, ~50 ms) does not match."""
    started = time.perf_counter()
    path = find_model()
    model = EmbeddingModel(path)
    loaded = time.perf_counter()
    reference = default_reference()
    silence = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    confidence, _ = reference.scores(model.embed(silence))
    scored = time.perf_counter()
    sha_ok: bool | None = None
    if verify_checksum:
        sha_ok = file_sha256(path) == MODEL_SHA256
        if not sha_ok:
            raise HotwordModelError(
                f"The hotword model {path} is not the expected file (checksum mismatch); "
                "run scripts/fetch-hotword-model again."
            )
    return SelfCheck(
        model_path=str(path),
        load_ms=(loaded - started) * 1000,
        score_ms=(scored - loaded) * 1000,
        silence_confidence=confidence,
        sha256_ok=sha_ok,
    )
