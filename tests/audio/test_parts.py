"""The engine's parts without a sound card: playback queue, barge-in fade, resampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.audio.pulse import dominant_hz, tone
from voicedesk.audio.devices import DeviceInfo, describe_devices, match_device
from voicedesk.audio.echo import Ducker, make_echo_canceller
from voicedesk.audio.engine import _Frames
from voicedesk.audio.playback import PlaybackBuffer
from voicedesk.audio.resample import StreamResampler


def test_playback_plays_in_order_and_pads_with_silence() -> None:
    buffer = PlaybackBuffer(fade_samples=4)
    buffer.push(np.arange(1, 6, dtype=np.int16))
    buffer.push(np.arange(6, 9, dtype=np.int16))
    out, real = buffer.pull(6)
    assert out.tolist() == [1, 2, 3, 4, 5, 6]
    assert real == 6
    out, real = buffer.pull(4)
    assert out.tolist() == [7, 8, 0, 0]
    assert real == 2
    assert buffer.queued_samples == 0


def test_barge_in_keeps_only_a_short_fade_of_what_plays_next() -> None:
    buffer = PlaybackBuffer(fade_samples=240)  # 5 ms at 48 kHz
    loud = np.full(48000, 20000, dtype=np.int16)
    buffer.push(loud)
    buffer.push(loud)
    buffer.pull(100)
    buffer.barge_in()
    assert buffer.queued_samples == 240
    fade, real = buffer.pull(480)
    assert real == 240
    assert fade[0] == 20000  # no jump from what was playing: no click
    assert np.all(np.diff(fade[:240].astype(int)) <= 0)  # falls steadily
    assert fade[239] == 0
    assert not fade[240:].any()


def test_barge_in_on_an_empty_queue_is_silence() -> None:
    buffer = PlaybackBuffer(fade_samples=240)
    buffer.barge_in()
    assert buffer.pull(10)[1] == 0


@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=30))
def test_chunked_resampling_equals_whole_signal_resampling(sizes: list[int]) -> None:
    signal = tone(1000, 0.3, rate=16000)
    whole = StreamResampler(16000, 48000)
    expected = np.concatenate([whole.process(signal), whole.process(signal[:0], last=True)])
    chunked = StreamResampler(16000, 48000)
    parts, offset = [], 0
    for size in sizes * 20:
        if offset >= signal.size:
            break
        parts.append(chunked.process(signal[offset : offset + size]))
        offset += size
    parts.append(chunked.process(signal[offset:]))
    parts.append(chunked.process(signal[:0], last=True))
    got = np.concatenate(parts)
    assert got.size == expected.size
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 4  # rounding, no seams


@pytest.mark.parametrize(("src", "dst"), [(16000, 48000), (44100, 48000), (48000, 8000)])
def test_resampling_keeps_the_pitch(src: int, dst: int) -> None:
    out = StreamResampler(src, dst).process(tone(1000, 0.5, rate=src))
    assert dominant_hz(out[dst // 20 :], dst) == pytest.approx(1000, abs=5)


def test_frames_cut_a_stream_into_fixed_sizes() -> None:
    frames = _Frames(4)
    assert [f.tolist() for f in frames.feed(np.arange(6, dtype=np.int16))] == [[0, 1, 2, 3]]
    assert [f.tolist() for f in frames.feed(np.arange(6, 8, dtype=np.int16))] == [[4, 5, 6, 7]]


def test_ducking_mutes_the_microphone_while_the_agent_is_audible() -> None:
    ducker = Ducker(48000, tail_ms=20)
    voice = np.full(480, 5000, dtype=np.int16)
    assert ducker.near_end(voice, 0).any()
    ducker.far_end(np.full(480, 8000, dtype=np.int16))
    assert not ducker.near_end(voice, 0).any()
    ducker.far_end(np.zeros(480, dtype=np.int16))
    ducker.far_end(np.zeros(480, dtype=np.int16))
    assert ducker.near_end(voice, 0).any()  # the tail is over


def test_echo_cancellation_can_be_turned_off() -> None:
    canceller, notice = make_echo_canceller(48000, enabled=False)
    assert canceller.name == "off"
    assert notice is None
    canceller, notice = make_echo_canceller(48000, enabled=True)
    assert canceller.name == "webrtc"


def _device(index: int, name: str, inputs: int, outputs: int, **kw: bool) -> DeviceInfo:
    return DeviceInfo(index, name, "ALSA", inputs, outputs, 48000, **kw)


def test_devices_are_found_by_index_exact_name_or_part_of_it() -> None:
    devices = [_device(0, "pulse", 32, 32), _device(1, "USB Headset Mic", 1, 0)]
    assert match_device(devices, "1") == devices[1]
    assert match_device(devices, 0) == devices[0]
    assert match_device(devices, "pulse") == devices[0]
    assert match_device(devices, "headset") == devices[1]
    assert match_device(devices, "webcam") is None


def test_the_device_list_marks_defaults() -> None:
    text = describe_devices(
        [
            _device(0, "pulse", 32, 32),
            _device(1, "default", 32, 32, is_default_input=True, is_default_output=True),
        ]
    )
    assert "Microphones:" in text
    assert "Speakers:" in text
    assert " *  1  default  [ALSA, 48000 Hz]" in text
    assert "    0  pulse" in text
