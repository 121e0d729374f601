"""Hotword references: what a hotword sounds like, as embeddings, saved as JSON.

A reference holds the embeddings of several utterances of the phrase (``embeddings``)
and, optionally, of phrases that sound alike but must not trigger (``negatives``):
the built-in "hey eleven" has both (``scripts/make-default-hotword``); one trained
from the user's recordings (:func:`train_hotword`) has only the first. A window of
live audio scores ``confidence = (1 + max cosine to the embeddings) / 2`` (0..1, as
EfficientWord-Net reports it) and ``margin = max cosine to the embeddings - max
cosine to the negatives``.

Files: ``{"format": "voicedesk-hotword", "version": 1, "name", "model_type",
"embeddings", "negatives"?, "threshold"?, "min_margin"?, "built_from"?}``; a set of
embeddings is either a list of lists of floats (EfficientWord-Net's own reference
files load as they are) or ``{"shape": [n, 2048], "scale": [n floats], "int8":
base64}`` (each row quantised to int8 with its own scale: a quarter of the size of
float32, and scores move by less than 0.001).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voicedesk.audio.wakeword.features import SAMPLE_RATE, FloatArray
from voicedesk.audio.wakeword.model import (
    EMBEDDING_SIZE,
    MODEL_TYPE,
    WINDOW_SAMPLES,
    EmbeddingModel,
    shared_model,
)
from voicedesk.audio.wakeword.paths import hotwords_dir
from voicedesk.audio.wakeword.wav import WavError, read_wav

logger = logging.getLogger(__name__)

FORMAT = "voicedesk-hotword"
VERSION = 1
DEFAULT_NAME = "hey eleven"
DEFAULT_REFERENCE_PATH = Path(__file__).resolve().parent / "hey_eleven.json"

MIN_RECORDINGS = 4
MAX_RECORDING_S = 10.0  # a file longer than this is not "one utterance of the phrase"
MIN_SPEECH_S = 0.25
#: The phrase must fit in the model's window with a little room on either side.
MAX_SPEECH_S = 1.4
SILENT_DBFS = -45.0  # a recording whose loudest 10 ms is quieter than this is silence
SPEECH_DROP_DB = 30.0  # speech = frames within this many dB of the loudest one
#: Where a trimmed recording is placed in the window: at its start, centre and end, so
#: the reference matches the phrase wherever the sliding window catches it.
PLACEMENTS = (0.0, 0.5, 1.0)
#: Quiet noise under the padding around a recording (about -66 dBFS): digital silence
#: has features no microphone produces (see features.ENERGY_FLOOR).
PADDING_NOISE = 5e-4

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


class HotwordError(Exception):
    """A reference cannot be loaded, saved or built; the message is a sentence (or
    several, one per line) saying what to do."""


@dataclass(frozen=True, slots=True)
class HotwordReference:
    """A hotword's embeddings (unit rows, float32) and the settings tuned for it.

    ``threshold``/``min_margin`` are ``None`` when the file does not suggest any: the
    detector then uses its defaults."""

    name: str
    embeddings: FloatArray
    negatives: FloatArray | None = None
    threshold: float | None = None
    min_margin: float | None = None
    built_from: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def scores(self, embedding: FloatArray) -> tuple[float, float]:
        """``(confidence 0..1, margin)`` of one window's embedding; the margin is +inf
        without negatives. No BLAS call: OpenBLAS would spin threads on other cores."""
        positive = float(np.max(np.einsum("ij,j->i", self.embeddings, embedding)))
        confidence = (1.0 + positive) / 2.0
        if self.negatives is None or len(self.negatives) == 0:
            return confidence, float("inf")
        negative = float(np.max(np.einsum("ij,j->i", self.negatives, embedding)))
        return confidence, positive - negative

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "model_type": MODEL_TYPE,
            "embeddings": encode_embeddings(self.embeddings),
        }
        if self.negatives is not None:
            data["negatives"] = encode_embeddings(self.negatives)
        if self.threshold is not None:
            data["threshold"] = self.threshold
        if self.min_margin is not None:
            data["min_margin"] = self.min_margin
        if self.built_from:
            data["built_from"] = self.built_from
        return data


# --------------------------------------------------------------------------- encoding


def _unit_rows(matrix: npt.NDArray[np.floating]) -> FloatArray:
    rows = np.asarray(matrix, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))[:, np.newaxis]
    return (rows / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def encode_embeddings(matrix: FloatArray) -> dict[str, Any]:
    """Rows quantised to int8, each with its own scale (max |value| / 127)."""
    rows = np.asarray(matrix, dtype=np.float32)
    scale = np.abs(rows).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    quantised = np.clip(np.round(rows / scale[:, np.newaxis]), -127, 127).astype(np.int8)
    return {
        "shape": list(rows.shape),
        "scale": [float(f"{s:.6g}") for s in scale],
        "int8": base64.b64encode(quantised.tobytes()).decode("ascii"),
    }


def decode_embeddings(data: Any, what: str) -> FloatArray:
    """A set of embeddings in either form; :class:`HotwordError` when malformed."""
    try:
        if isinstance(data, dict):
            rows, columns = (int(v) for v in data["shape"])
            raw = np.frombuffer(base64.b64decode(data["int8"], validate=True), dtype=np.int8)
            scale = np.asarray(data["scale"], dtype=np.float32)
            matrix = raw.reshape(rows, columns).astype(np.float32) * scale[:, np.newaxis]
        else:
            matrix = np.asarray(data, dtype=np.float32)
            if matrix.ndim == 1:
                matrix = matrix[np.newaxis]
    except (KeyError, TypeError, ValueError) as exc:
        raise HotwordError(f"The {what} in this hotword file are malformed ({exc}).") from None
    if matrix.ndim != 2 or matrix.shape[1] != EMBEDDING_SIZE or matrix.shape[0] == 0:
        raise HotwordError(
            f"The {what} in this hotword file have shape {list(matrix.shape)}; "
            f"expected rows of {EMBEDDING_SIZE} numbers."
        )
    if not np.all(np.isfinite(matrix)):
        raise HotwordError(f"The {what} in this hotword file contain invalid numbers.")
    return _unit_rows(matrix)


# --------------------------------------------------------------------------- files


def reference_from_json(data: Any, path: Path | None = None) -> HotwordReference:
    where = f" {path}" if path else ""
    if not isinstance(data, dict) or "embeddings" not in data:
        raise HotwordError(f"The file{where} is not a hotword reference (no embeddings).")
    model_type = data.get("model_type", MODEL_TYPE)
    if model_type != MODEL_TYPE:
        raise HotwordError(
            f"The hotword file{where} was made for the model {model_type!r}; voicedesk uses "
            f"{MODEL_TYPE!r}. Train it again with `voicedesk hotword train`."
        )
    embeddings = decode_embeddings(data["embeddings"], "embeddings")
    negatives = decode_embeddings(data["negatives"], "negatives") if data.get("negatives") else None
    name = str(data.get("name") or (path.stem.removesuffix("_ref") if path else "hotword"))
    threshold = _optional_float(data.get("threshold"), "threshold", where)
    min_margin = _optional_float(data.get("min_margin"), "min_margin", where)
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise HotwordError(f"The threshold in{where} is {threshold}; it must be between 0 and 1.")
    built_from = data.get("built_from")
    return HotwordReference(
        name=name,
        embeddings=embeddings,
        negatives=negatives,
        threshold=threshold,
        min_margin=min_margin,
        built_from=built_from if isinstance(built_from, dict) else {},
        path=path,
    )


def _optional_float(value: Any, key: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise HotwordError(f"The {key} in the hotword file{where} is not a number.") from None


def load_reference_file(path: Path) -> HotwordReference:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HotwordError(f"There is no hotword file at {path}.") from None
    except (UnicodeDecodeError, ValueError):
        raise HotwordError(
            f"{path} is not a hotword file: give the .json file `voicedesk hotword train` made "
            "(or a trained hotword's name)."
        ) from None
    except OSError as exc:
        raise HotwordError(f"The hotword file {path} could not be read ({exc}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HotwordError(f"The hotword file {path} is not valid JSON ({exc}).") from None
    return reference_from_json(data, path)


def default_reference() -> HotwordReference:
    """The built-in "hey eleven" (shipped in the package)."""
    return load_reference_file(DEFAULT_REFERENCE_PATH)


def check_name(name: str) -> str:
    """A hotword's name, stripped; :class:`HotwordError` unless it is a plain name that
    can be a file name (letters, digits, spaces, ``-``, ``_``, ``.``; up to 64)."""
    stripped = name.strip()
    if not _NAME_PATTERN.match(stripped) or stripped.endswith("."):
        raise HotwordError(
            f"{name!r} cannot be a hotword name: use up to 64 letters, digits, spaces, "
            "'-', '_' or '.', starting with a letter or digit."
        )
    return stripped


def reference_path(name: str) -> Path:
    """Where the hotword ``name`` is saved: ``<user data>/hotwords/NAME.json``."""
    return hotwords_dir() / f"{check_name(name)}.json"


def saved_hotwords() -> list[str]:
    """Names of the hotwords saved in the user data folder, sorted."""
    folder = hotwords_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json"))


def _is_default_name(name: str) -> bool:
    return name.strip().casefold().replace("-", " ").replace("_", " ") in (DEFAULT_NAME, "default")


def load_reference(name_or_path: str | Path | None = None) -> HotwordReference:
    """A reference by name or path: ``None``/"hey eleven"/"default" for the built-in
    one; a path to a JSON file; else a hotword saved by :func:`train_hotword`."""
    if name_or_path is None:
        return default_reference()
    if isinstance(name_or_path, Path):
        return load_reference_file(name_or_path)
    text = name_or_path.strip()
    candidate = Path(text).expanduser()
    if text.endswith(".json") or candidate.is_file() or "/" in text or "\\" in text:
        return load_reference_file(candidate)
    if _is_default_name(text):
        return default_reference()
    path = reference_path(text)
    if not path.is_file():
        known = ", ".join([DEFAULT_NAME, *saved_hotwords()])
        raise HotwordError(
            f"There is no hotword called {text!r} (known: {known}). Train it with "
            f"`voicedesk hotword train --input-dir DIR --name {text!r}`."
        )
    return load_reference_file(path)


def save_reference(reference: HotwordReference, path: Path | None = None) -> Path:
    """Write ``reference`` as JSON (to its user-data path by default); returns the path."""
    target = path if path is not None else reference_path(reference.name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_text(json.dumps(reference.to_json(), separators=(",", ":")) + "\n")
        partial.replace(target)
    except OSError as exc:
        raise HotwordError(f"The hotword could not be saved to {target} ({exc}).") from None
    return target


# --------------------------------------------------------------------------- building


def frame_dbfs(audio: FloatArray, frame: int = SAMPLE_RATE // 100) -> FloatArray:
    """Level of each whole 10 ms frame, dBFS (a full-scale sine is -3)."""
    whole = audio.size - audio.size % frame
    if whole == 0:
        return np.full(1, -120.0, dtype=np.float32)
    frames = audio[:whole].reshape(-1, frame).astype(np.float64)
    rms: npt.NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", frames, frames) / frame)
    levels: FloatArray = (20.0 * np.log10(np.maximum(rms, 1e-6))).astype(np.float32)
    return levels


def speech_span(audio: FloatArray) -> tuple[int, int, float]:
    """``(start, end, loudest dBFS)``: the samples from the first to the last 10 ms frame
    within :data:`SPEECH_DROP_DB` of the loudest, with 50 ms either side."""
    levels = frame_dbfs(audio)
    loudest = float(levels.max())
    loud = np.flatnonzero(levels >= loudest - SPEECH_DROP_DB)
    frame = SAMPLE_RATE // 100
    pad = SAMPLE_RATE // 20
    start = max(0, int(loud[0]) * frame - pad)
    end = min(audio.size, (int(loud[-1]) + 1) * frame + pad)
    return start, end, loudest


def place_in_window(speech: FloatArray, where: float, seed: int) -> FloatArray:
    """``speech`` in a 1.5 s window over quiet noise: ``where`` 0 at the start, 1 at the end."""
    rng = np.random.default_rng(seed)
    window = rng.normal(0.0, PADDING_NOISE, WINDOW_SAMPLES).astype(np.float32)
    clip = speech[:WINDOW_SAMPLES]
    offset = round(where * (WINDOW_SAMPLES - clip.size))
    window[offset : offset + clip.size] += clip
    return window


def utterance_embeddings(
    model: EmbeddingModel, speech: FloatArray, seed: int, placements: Iterable[float] = PLACEMENTS
) -> FloatArray:
    """Embeddings of one trimmed utterance at each placement in the window."""
    return np.stack(
        [
            model.embed(place_in_window(speech, where, seed + i))
            for i, where in enumerate(placements)
        ]
    )


def check_recording(path: Path) -> FloatArray:
    """One recording as trimmed 16 kHz mono speech, or :class:`HotwordError` saying why
    it cannot be used."""
    try:
        wav = read_wav(path)
    except WavError as exc:
        raise HotwordError(str(exc)) from None
    if wav.duration_s > MAX_RECORDING_S:
        raise HotwordError(
            f"{path.name} is {wav.duration_s:.1f} s long; record only the phrase "
            f"(at most {MAX_RECORDING_S:.0f} s with the silence around it)."
        )
    audio = wav.mono_at(SAMPLE_RATE)
    if audio.size < SAMPLE_RATE // 10:
        raise HotwordError(f"{path.name} is too short ({wav.duration_s:.2f} s) to hold the phrase.")
    start, end, loudest = speech_span(audio)
    if loudest < SILENT_DBFS:
        raise HotwordError(
            f"{path.name} is silent or nearly (its loudest moment is {loudest:.0f} dBFS); "
            "check the microphone and record it again."
        )
    seconds = (end - start) / SAMPLE_RATE
    if seconds < MIN_SPEECH_S:
        raise HotwordError(
            f"{path.name} holds only {seconds:.2f} s of sound; say the whole phrase."
        )
    if seconds > MAX_SPEECH_S:
        raise HotwordError(
            f"{path.name} holds {seconds:.1f} s of sound; the phrase must take at most "
            f"{MAX_SPEECH_S} s (say only the phrase, without other words or noise around it)."
        )
    return audio[start:end]


ProgressCallback = Callable[[int, int, str], None]


def build_reference(
    input_dir: Path,
    name: str,
    *,
    model: EmbeddingModel | None = None,
    progress: ProgressCallback | None = None,
) -> HotwordReference:
    """A reference from the WAV recordings in ``input_dir`` (any rate, any channels; at
    least :data:`MIN_RECORDINGS`), each one utterance of the phrase.

    ``progress(done, total, file_name)`` is called after each recording. Raises
    :class:`HotwordError` with one line per problem when any recording cannot be used,
    so all of them can be fixed at once."""
    name = check_name(name)
    if not input_dir.is_dir():
        raise HotwordError(f"{input_dir} is not a folder.")
    files = sorted(p for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    others = sorted(
        p.name for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() != ".wav"
    )
    if len(files) < MIN_RECORDINGS:
        note = (
            f" ({len(others)} other file(s) there, such as {others[0]}, are not WAV: "
            "convert them to WAV)"
            if others
            else ""
        )
        raise HotwordError(
            f"{input_dir} holds {len(files)} WAV recording(s){note}; "
            f"record the phrase at least {MIN_RECORDINGS} times, one WAV file each."
        )
    speech: list[FloatArray] = []
    problems: list[str] = []
    for path in files:
        try:
            speech.append(check_recording(path))
        except HotwordError as exc:
            problems.append(str(exc))
    if problems:
        usable = len(files) - len(problems)
        raise HotwordError(
            f"{len(problems)} of {len(files)} recordings cannot be used ({usable} can; "
            f"{MIN_RECORDINGS} are needed). Re-record or remove these:\n- " + "\n- ".join(problems)
        )
    model = model if model is not None else shared_model()
    rows = []
    for index, (path, utterance) in enumerate(zip(files, speech, strict=True)):
        rows.append(utterance_embeddings(model, utterance, seed=index * 17))
        if progress is not None:
            progress(index + 1, len(files), path.name)
    return HotwordReference(
        name=name,
        embeddings=_unit_rows(np.concatenate(rows)),
        built_from={"recordings": [p.name for p in files], "placements": list(PLACEMENTS)},
    )


def train_hotword(
    input_dir: Path,
    name: str,
    *,
    output: Path | None = None,
    model: EmbeddingModel | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[HotwordReference, Path]:
    """:func:`build_reference`, then save it (to ``<user data>/hotwords/NAME.json`` unless
    ``output`` is given). Returns the reference and where it was saved."""
    reference = build_reference(input_dir, name, model=model, progress=progress)
    path = save_reference(reference, output)
    return HotwordReference(
        name=reference.name,
        embeddings=reference.embeddings,
        built_from=reference.built_from,
        path=path,
    ), path
