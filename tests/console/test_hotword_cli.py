"""``voicedesk hotword train|test|list``: your own hotword from recordings, as the
tutorial's optional step, and its scores heard through the null-sink microphone."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.audio.pulse import play_into
from tests.conftest import scaled
from tests.console.test_console import VOICEDESK, run_cli
from tests.console.test_handsfree_console import needs_hotword, say, with_silence
from voicedesk.handsfree import write_wav

pytestmark = [needs_hotword, pytest.mark.timeout(180, method="thread")]
VOICES = ("en-us", "en-gb", "en-us+f2", "en-gb-scotland+m3", "en-us+m3")


def recordings(folder: Path, phrase: str = "hey computer", count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, voice in enumerate(VOICES[:count]):
        write_wav(folder / f"take{i + 1}.wav", with_silence(say(phrase, voice)))
    return folder


def test_train_list_and_use_a_hotword(tmp_path: Path) -> None:
    env = {"VOICEDESK_DATA_DIR": str(tmp_path / "data")}
    result = run_cli(
        [
            "hotword",
            "train",
            "--input-dir",
            str(recordings(tmp_path / "takes")),
            "--name",
            "hey computer",
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr
    saved = tmp_path / "data" / "hotwords" / "hey_computer.json"
    assert saved.is_file()
    assert "[4/4] take4.wav" in result.stdout
    assert "voicedesk console --wake-word hey_computer" in result.stdout
    listed = run_cli(["hotword", "list"], env=env)
    assert "hey eleven (built in; the default)" in listed.stdout
    assert f"hey_computer ({saved})" in listed.stdout


def test_too_few_or_unusable_recordings_are_sentences(tmp_path: Path) -> None:
    takes = recordings(tmp_path / "takes", count=3)
    result = run_cli(["hotword", "train", "--input-dir", str(takes), "--name", "x"])
    assert result.returncode == 1
    assert "holds 3 WAV recording(s)" in result.stderr
    (takes / "take4.wav").write_bytes(b"not a wav")
    result = run_cli(["hotword", "train", "--input-dir", str(takes), "--name", "x"])
    assert result.returncode == 1
    assert "take4.wav" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("pulse")
async def test_hotword_test_prints_scores_and_hears_it() -> None:
    proc = await asyncio.create_subprocess_exec(
        *VOICEDESK,
        "hotword",
        "test",
        "--seconds",
        "6",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), scaled(30))
    assert first.startswith(b"Listening for 'hey eleven'")
    await asyncio.sleep(1.0)
    phrase = with_silence(say("hey eleven"), before_s=0.5, after_s=1.0)
    player = play_into(np.asarray(phrase), 16000)
    await asyncio.to_thread(player.wait, scaled(30))
    out, _ = await asyncio.wait_for(proc.communicate(), scaled(30))
    text = out.decode()
    assert proc.returncode == 0, text
    assert "<- HEARD" in text
    assert "Heard 'hey eleven' 1 time(s)" in text


def test_hotword_test_with_an_unknown_hotword() -> None:
    result = subprocess.run(
        [*VOICEDESK, "hotword", "test", "--wake-word", "nope", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        check=False,
    )
    assert result.returncode == 1
    assert "There is no hotword called 'nope'" in result.stdout
