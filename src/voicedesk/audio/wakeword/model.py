"""The embedding model: a 1.5 s window of audio -> a 2048-dimensional unit vector.

The model is EfficientWord-Net's int8 ResNet-50 trained with an ArcFace loss
(``resnet_50_arc``, Apache-2.0), taken from its PyPI wheel by
``scripts/fetch-hotword-model``; it is not in our repository. Its input is
``1 x 1 x 149 x 64`` log mel energies (:mod:`.features`), its output an
L2-normalised embedding: two utterances of the same phrase lie close together
whoever says them.

Where the model file is looked for, in order (:func:`find_model`):

1. the path in ``VOICEDESK_HOTWORD_MODEL`` (a file, or a folder holding it);
2. the package's ``model/`` folder (where the fetch script and a bundle put it);
3. the user data folder's ``models/`` (``scripts/fetch-hotword-model --user``).

onnxruntime runs on one thread with spinning off: with its defaults it keeps a pool
of threads busy-waiting between windows, about 5x the CPU for the same work.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voicedesk.audio.wakeword.features import SAMPLE_RATE, FloatArray, frame_count, log_mel
from voicedesk.audio.wakeword.paths import data_dir

MODEL_ENV = "VOICEDESK_HOTWORD_MODEL"
MODEL_FILE = "resnet_50_arc_qint8.onnx"
#: SHA-256 of the model file (the same pin as scripts/fetch-hotword-model).
MODEL_SHA256 = "08189e02003f00d1438c9fa05277ac1a91affeb7c58981d11bc5ac89ddbd0424"
#: What a reference file names as the model its embeddings came from (EfficientWord-Net's
#: name for this architecture, so its own reference files load too).
MODEL_TYPE = "resnet_50_arc"
PACKAGE_MODEL_DIR = Path(__file__).resolve().parent / "model"

WINDOW_SAMPLES = 24000  # 1.5 s: the model's fixed input
EMBEDDING_SIZE = 2048
_FEATURE_FRAMES = frame_count(WINDOW_SAMPLES)

FETCH_HINT = (
    "Run scripts/fetch-hotword-model (or scripts/fetch-hotword-model --user) to fetch it, "
    f"or set {MODEL_ENV} to the file's path."
)


class HotwordModelError(Exception):
    """The model is missing or cannot be loaded; the message is a sentence for the user."""


def user_model_dir() -> Path:
    return data_dir() / "models"


def model_candidates() -> list[Path]:
    """Where the model is looked for, in order."""
    candidates: list[Path] = []
    override = os.environ.get(MODEL_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
        candidates.append(path / MODEL_FILE if path.is_dir() else path)
    candidates.append(PACKAGE_MODEL_DIR / MODEL_FILE)
    candidates.append(user_model_dir() / MODEL_FILE)
    return candidates


def find_model() -> Path:
    """The model file's path. Raises :class:`HotwordModelError` (a sentence) if absent.

    A path named by ``VOICEDESK_HOTWORD_MODEL`` must exist: a typo there is reported,
    not silently replaced by another copy."""
    override = os.environ.get(MODEL_ENV, "").strip()
    candidates = model_candidates()
    if override and not candidates[0].is_file():
        raise HotwordModelError(
            f"{MODEL_ENV} names {candidates[0]}, which is not a file. {FETCH_HINT}"
        )
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise HotwordModelError(
        f"The hotword model is not installed (looked in {looked}). {FETCH_HINT}"
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _session_options(ort: Any) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no graph-optimisation chatter on stderr
    return options


class EmbeddingModel:
    """The model, loaded once. :meth:`embed` may be called from any thread (onnxruntime
    sessions are thread-safe); calls are serialised so the model stays on one thread's
    worth of CPU."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else find_model()
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a broken install
            raise HotwordModelError(
                f"onnxruntime could not be imported ({exc}); reinstall voicedesk."
            ) from None
        try:
            self._session = ort.InferenceSession(
                str(self.path),
                sess_options=_session_options(ort),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise HotwordModelError(
                f"The hotword model {self.path} could not be loaded ({exc}). {FETCH_HINT}"
            ) from None
        inputs = self._session.get_inputs()
        self._input_name = str(inputs[0].name)
        shape = list(inputs[0].shape)
        if shape[-2:] != [_FEATURE_FRAMES, 64]:
            raise HotwordModelError(
                f"{self.path} is not the hotword model (input shape {shape}). {FETCH_HINT}"
            )
        self._lock = threading.Lock()

    def embed_features(self, features: FloatArray) -> FloatArray:
        """``149 x 64`` log mel energies -> a unit vector of :data:`EMBEDDING_SIZE`."""
        batch = np.ascontiguousarray(features, dtype=np.float32)[np.newaxis, np.newaxis]
        with self._lock:
            (output,) = self._session.run(None, {self._input_name: batch})
        vector = np.asarray(output, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def embed(self, window: npt.NDArray[np.floating]) -> FloatArray:
        """A 1.5 s window (:data:`WINDOW_SAMPLES` floats in -1..1 at 16 kHz) -> its
        embedding."""
        if window.shape != (WINDOW_SAMPLES,):
            raise ValueError(
                f"a window is {WINDOW_SAMPLES} samples at {SAMPLE_RATE} Hz, got {window.shape}"
            )
        return self.embed_features(log_mel(window))


_shared: EmbeddingModel | None = None
_shared_lock = threading.Lock()


def shared_model() -> EmbeddingModel:
    """One model per process (22 MB of weights, ~0.1 s to load), loaded on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = EmbeddingModel()
        return _shared
