"""The soak's CI variant: ``bench/soak.py --minutes 3`` through the null sinks, in a
process of its own, fails on a leak.

Asserted: threads and descriptors flat (after the warm-up against the end, with a small
allowance for a helper that is just ending), RSS growing at most 3 MB in the ~2.7
minutes after the warm-up (a linear fit; a leak of 2 MB a minute fails, allocator noise
on a busy machine does not), no error and the conversation still connected, and the
script having done what it says (device switches, tool calls, interruptions). Speaker
underruns, microphone overflows and event-loop stalls are printed, not asserted: CI
machines are shared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.matrix import keep_evidence, keep_files

ROOT = Path(__file__).resolve().parents[1]
MINUTES = 3
RSS_GROWTH_ALLOWED_MB = 3.0
THREADS_ALLOWED = 1
FDS_ALLOWED = 2


@pytest.mark.usefixtures("pulse")
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
@pytest.mark.timeout(400, method="thread")
def test_a_three_minute_voice_conversation_leaks_nothing(tmp_path: Path) -> None:
    figures = tmp_path / "soak.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--minutes",
            str(MINUTES),
            "--json",
            str(figures),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=380,
    )
    print(run.stdout)  # the table, shown with -s or when the test fails
    # For the secrets check after the whole session (tests/faults/test_no_secrets.py).
    keep_evidence("soak", "stdout.txt", run.stdout)
    keep_evidence("soak", "stderr.txt", run.stderr)
    keep_files("soak", *(p for p in tmp_path.iterdir() if p.is_dir()))
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-4000:]}"
    r = json.loads(figures.read_text())
    assert r["error"] is None
    assert r["connected_at_end"]
    start, end = r["start"], r["end"]
    assert end["threads"] <= start["threads"] + THREADS_ALLOWED, run.stdout
    assert end["fds"] <= start["fds"] + FDS_ALLOWED, run.stdout
    assert end["inet"] <= start["inet"], run.stdout
    assert end["unix"] <= start["unix"] + 1, run.stdout
    assert r["rss_growth_fit_mb"] <= RSS_GROWTH_ALLOWED_MB, run.stdout
    # The conversation was a real one all along.
    assert r["device_switches"] >= 2
    events = r["events"]
    assert events.get("ToolCallFinished", 0) >= 2
    assert events.get("Interruption", 0) >= 1
    assert events.get("UserTranscript", 0) >= 1
