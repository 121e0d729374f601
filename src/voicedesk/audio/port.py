"""The interface between a conversation and an audio engine.

The session owns the protocol; the audio engine owns the devices. This module is
the contract between them and imports neither (the session is the layer above):
:class:`~voicedesk.audio.engine.AudioEngine` implements :class:`AudioPort`, the
session implements :class:`AudioSink`.

Threads: every method on both sides is called on the event loop's thread. An
engine whose device callbacks run on other threads hands data over with
``loop.call_soon_threadsafe`` before calling the sink.
"""

from __future__ import annotations

from typing import Protocol

from voicedesk.protocol.formats import AudioFormat


class AudioStartError(Exception):
    """Audio could not start (no microphone, device busy); the message is a sentence."""


class DeviceError(AudioStartError):
    """A device could not be found or opened; the message is a sentence for the user."""


class AudioSink(Protocol):
    def on_mic_audio(self, audio: bytes) -> None:
        """A microphone chunk already in the user input format."""

    def on_playback_started(self) -> None:
        """Agent audio became audible."""

    def on_playback_stopped(self) -> None:
        """The playback queue ran dry (or was flushed): nothing audible any more."""

    def on_audio_failure(self, message: str) -> None:
        """A device failed mid-call and the engine could not recover; a sentence."""

    def on_audio_notice(self, message: str) -> None:
        """Something the user should know that does not stop the audio (a fallback
        device, echo cancellation unavailable); a sentence."""


class AudioPort(Protocol):
    async def start(
        self, *, input_format: AudioFormat, output_format: AudioFormat, sink: AudioSink
    ) -> None:
        """Open the devices in these formats. Raise :class:`AudioStartError` on failure."""

    def play(self, audio: bytes) -> None:
        """Queue agent audio (in ``output_format``) behind what is already queued."""

    def interrupt(self) -> None:
        """Barge-in: stop what is audible within a frame and drop everything queued."""

    def set_muted(self, muted: bool) -> None:
        """Muted: the engine keeps sending chunks of silence."""

    def set_volume(self, volume: float) -> None:
        """Output volume, 0..1."""

    async def stop(self) -> None:
        """Close the devices (an engine also listening for a hotword keeps them open and
        only stops feeding this conversation). Safe to call twice."""
