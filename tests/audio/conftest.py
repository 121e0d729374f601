"""Real-audio tests need the null-sink sound card; CI (scripts/test) always has it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.audio.pulse import SinkRecorder


@pytest.fixture
def speaker(pulse: None) -> Iterator[SinkRecorder]:
    recorder = SinkRecorder("speaker")
    try:
        yield recorder
    finally:
        recorder.stop()
