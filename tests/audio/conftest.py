"""Real-audio tests need the null-sink sound card; CI (scripts/test) always has it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.audio.pulse import SinkRecorder, pulse_ready


@pytest.fixture(scope="session")
def pulse() -> None:
    if pulse_ready():
        return
    message = (
        'no PulseAudio null sinks: run eval "$(scripts/pulse-null-sinks)" first (scripts/test does)'
    )
    if os.environ.get("VOICEDESK_AUDIO_TESTS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def speaker(pulse: None) -> Iterator[SinkRecorder]:
    recorder = SinkRecorder("speaker")
    try:
        yield recorder
    finally:
        recorder.stop()
