"""Audio devices through PortAudio (PyAudio): listing, choosing, opening.

PyAudio objects are not thread-safe: one :class:`PortAudio` per engine, used from
one thread at a time (the engine opens and closes streams from a worker thread,
never from a PortAudio callback).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from voicedesk.audio.port import DeviceError

logger = logging.getLogger(__name__)

#: Rates tried, best first, when a device is opened (the echo canceller and the
#: resamplers work at any of them).
PREFERRED_RATES = (48000, 44100, 32000, 24000, 16000)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: int
    is_default_input: bool = False
    is_default_output: bool = False

    @property
    def is_input(self) -> bool:
        return self.max_input_channels > 0

    @property
    def is_output(self) -> bool:
        return self.max_output_channels > 0


_alsa_handler: Any = None


def quiet_alsa() -> None:
    """Stop ALSA printing its probe errors to stderr (Linux; harmless elsewhere).

    PortAudio probes every ALSA PCM at start-up, and ALSA reports each missing card
    on stderr, which would litter the user's terminal.
    """
    global _alsa_handler
    if not sys.platform.startswith("linux") or _alsa_handler is not None:
        return
    name = ctypes.util.find_library("asound")
    if name is None:
        return
    try:
        asound = ctypes.CDLL(name)
    except OSError:
        return
    handler_type = ctypes.CFUNCTYPE(
        None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
    )

    def ignore(*_: Any) -> None:
        return None

    _alsa_handler = handler_type(ignore)  # kept alive: ALSA holds the pointer
    asound.snd_lib_error_set_handler(_alsa_handler)


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """JACK's client library prints to fd 2 when no server runs; hide that during init."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    saved = None
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), fd)
        yield
    finally:
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


# Pa_Initialize and Pa_Terminate are not thread-safe: two threads initialising at once
# (the window listing devices while the engine prepares) crash inside PortAudio.
_lifecycle_lock = threading.Lock()


class PortAudio:
    """One PortAudio session: device listing and stream opening. Sessions may be
    created and ended from any thread; they are serialised here."""

    def __init__(self) -> None:
        quiet_alsa()
        import pyaudio

        self.pyaudio = pyaudio
        with _lifecycle_lock, _stderr_silenced():
            self.pa = pyaudio.PyAudio()

    def terminate(self) -> None:
        with _lifecycle_lock:
            self.pa.terminate()

    def devices(self) -> list[DeviceInfo]:
        default_in = self._default_index(self.pa.get_default_input_device_info)
        default_out = self._default_index(self.pa.get_default_output_device_info)
        found = []
        for index in range(self.pa.get_device_count()):
            info = self.pa.get_device_info_by_index(index)
            api = self.pa.get_host_api_info_by_index(int(info["hostApi"]))
            found.append(
                DeviceInfo(
                    index=index,
                    name=str(info["name"]),
                    host_api=str(api["name"]),
                    max_input_channels=int(info["maxInputChannels"]),
                    max_output_channels=int(info["maxOutputChannels"]),
                    default_sample_rate=int(info["defaultSampleRate"]),
                    is_default_input=index == default_in,
                    is_default_output=index == default_out,
                )
            )
        return found

    @staticmethod
    def _default_index(getter: Any) -> int | None:
        try:
            return int(getter()["index"])
        except (OSError, KeyError):
            return None

    def choose(self, wanted: str | int | None, *, output: bool) -> DeviceInfo:
        """The device the user asked for (index, exact name or a part of the name), else
        the default one. Raises :class:`DeviceError` with a sentence."""
        kind = "speaker" if output else "microphone"
        candidates = [d for d in self.devices() if (d.is_output if output else d.is_input)]
        if not candidates:
            raise DeviceError(f"No {kind} was found on this computer.")
        if wanted is not None and str(wanted).strip() != "":
            match = match_device(candidates, wanted)
            if match is None:
                raise DeviceError(
                    f"The {kind} '{wanted}' was not found. Available: "
                    + "; ".join(d.name for d in candidates)
                    + "."
                )
            return match
        return next(
            (d for d in candidates if (d.is_default_output if output else d.is_default_input)),
            candidates[0],
        )

    def supported_rate(self, device: DeviceInfo, *, output: bool, preferred: int | None) -> int:
        """A rate this device opens at: ``preferred`` if it can, else the best of
        :data:`PREFERRED_RATES`, else its own default rate."""
        for rate in (preferred, *PREFERRED_RATES, device.default_sample_rate):
            if rate is None:
                continue
            try:
                kwargs: dict[str, Any] = (
                    {"output_device": device.index, "output_channels": 1}
                    if output
                    else {"input_device": device.index, "input_channels": 1}
                )
                if self.pa.is_format_supported(
                    rate,
                    output_format=self.pyaudio.paInt16,
                    input_format=self.pyaudio.paInt16,
                    **kwargs,
                ):
                    return int(rate)
            except ValueError:
                continue
        raise DeviceError(f"The device '{device.name}' cannot play or record 16-bit mono audio.")

    def open(
        self,
        device: DeviceInfo,
        *,
        output: bool,
        rate: int,
        frames_per_buffer: int,
        callback: Any,
    ) -> Any:
        kwargs: dict[str, Any] = (
            {"output": True, "output_device_index": device.index}
            if output
            else {"input": True, "input_device_index": device.index}
        )
        try:
            return self.pa.open(
                rate=rate,
                channels=1,
                format=self.pyaudio.paInt16,
                frames_per_buffer=frames_per_buffer,
                stream_callback=callback,
                **kwargs,
            )
        except (OSError, ValueError) as exc:
            kind = "speaker" if output else "microphone"
            raise DeviceError(f"The {kind} '{device.name}' could not be opened ({exc}).") from exc


def match_device(candidates: list[DeviceInfo], wanted: str | int) -> DeviceInfo | None:
    """The device ``wanted`` names among ``candidates``: an index, the exact name, or a
    part of a name (case-insensitive); ``None`` when none fits."""
    text = str(wanted).strip()
    if text.isdigit():
        return next((d for d in candidates if d.index == int(text)), None)
    exact = [d for d in candidates if d.name == text]
    if exact:
        return exact[0]
    lowered = text.casefold()
    partial = [d for d in candidates if lowered in d.name.casefold()]
    return partial[0] if partial else None


def list_devices() -> list[DeviceInfo]:
    """Every input and output device PortAudio sees (opens and closes PortAudio)."""
    portaudio = PortAudio()
    try:
        return portaudio.devices()
    finally:
        portaudio.terminate()


def describe_devices(devices: list[DeviceInfo]) -> str:
    """The device list as ``--list-devices`` prints it."""
    lines = []
    for title, want_output in (("Microphones", False), ("Speakers", True)):
        lines.append(f"{title}:")
        chosen = [d for d in devices if (d.is_output if want_output else d.is_input)]
        if not chosen:
            lines.append("  (none)")
        for d in chosen:
            default = d.is_default_output if want_output else d.is_default_input
            mark = "*" if default else " "
            lines.append(
                f" {mark}{d.index:3d}  {d.name}  [{d.host_api}, {d.default_sample_rate} Hz]"
            )
    lines.append(
        "* = default. Pass an index or a part of a name to --input-device/--output-device."
    )
    return "\n".join(lines)
