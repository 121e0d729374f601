"""The matrix, the sound devices: the microphone vanishing mid-call and the sound server
restarting mid-call. Each runs on a PulseAudio of its own (the null sinks), so the
other tests' sound card keeps its state."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audio.pulse import start_sound_server
from tests.conftest import scaled
from tests.faults.client import assert_history_kept, console_call
from tests.faults.matrix import FaultCase
from voicedesk.localagent import AgentConfig, LocalAgentServer

pytestmark = pytest.mark.usefixtures("pulse")


@pytest.fixture
def own_sound_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A PulseAudio for this case only (its runtime folder), used by this process."""
    runtime = Path(f"/tmp/voicedesk-pulse-fault-{os.getpid()}")
    for key, value in start_sound_server(runtime).items():
        monkeypatch.setenv(key, value)
    try:
        yield runtime
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(_pid(runtime), signal.SIGKILL)
        shutil.rmtree(runtime, ignore_errors=True)


def _pid(runtime: Path) -> int:
    return int((runtime / "pid").read_text().split()[0])


def _pactl(*args: str) -> str:
    done = subprocess.run(["pactl", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


SWITCHED = (
    "[audio] The microphone stopped working; voicedesk switched to the default devices "
    "(default / default)."
)
AS_TEXT = (
    "[audio] The microphone stopped working and no other could be opened, so the "
    "conversation goes on as text."
)


async def _voice_call_then(
    fault: FaultCase, runtime: Path, what: str, last_line: str
) -> tuple[list[str], bool]:
    """A voice conversation; ``what`` happens to the sound server mid-call. Returns the
    ``[audio]`` lines up to ``last_line`` and whether the microphone streams again; the
    conversation goes on either way."""
    config = AgentConfig(ping_interval_s=None, speak_first_message=False)
    async with (
        LocalAgentServer(config) as server,
        console_call(fault, server.http_url) as call,
    ):
        session = server.sessions[0]
        engine = call.launcher.engine
        assert engine is not None
        assert engine.input_device is not None
        await session.wait_for(lambda s: s.audio_chunks >= 5, scaled(5))
        await session.say("Sure, I am listening.")  # short: a typed line waits for its end
        await call.line("Agent: Sure, I am listening.")
        fault.inject()
        if what == "microphone":
            # The microphone stops delivering (a headset unplugged whose device lingers,
            # a driver that hangs): the microphone's device is suspended, for good.
            _pactl("suspend-sink", "micsink", "1")
        else:
            os.kill(_pid(runtime), signal.SIGKILL)
            await asyncio.to_thread(start_sound_server, runtime)
        await call.saw(last_line, timeout=20)
        before = session.audio_chunks
        streams = False
        if not call.conversation.is_text_only:
            with contextlib.suppress(TimeoutError):  # a restarted server takes a moment
                await session.wait_for(lambda s: s.audio_chunks > before + 10, scaled(6))
                streams = True
        assert call.conversation.status.value == "connected"
        call.type("what's my battery?")  # and the conversation goes on
        await call.line("[tool] getBatteryLevel ")
        shown = [line for line in call.lines() if line.startswith("[audio] ")]
        fault.seen[:] = shown
        text_only = call.conversation.is_text_only
    assert engine.input_device is None
    assert engine.output_device is None
    assert_history_kept(fault, "Sure, I am listening.", "what's my battery?")
    assert text_only != streams
    return shown, streams


@pytest.mark.fault("microphone vanishes")
async def test_the_microphone_vanishes(fault: FaultCase, own_sound_server: Path) -> None:
    """The engine reopens the default devices once; they do not work either: the
    conversation goes on as text, with two sentences (not a notice every few seconds)."""
    shown, streams = await _voice_call_then(fault, own_sound_server, "microphone", AS_TEXT)
    assert shown == [SWITCHED, AS_TEXT]
    assert not streams


@pytest.mark.fault("sound server restarts")
async def test_the_sound_server_restarts(fault: FaultCase, own_sound_server: Path) -> None:
    """The engine reopens the devices on the restarted server: the voice goes on."""
    shown, streams = await _voice_call_then(fault, own_sound_server, "restart", SWITCHED)
    assert shown == [SWITCHED]
    assert streams
