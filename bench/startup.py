"""Launch to window visible: voicedesk vs a bare PySide6 window (the floor).

Each launch is a new process. The clock starts just before the process is spawned
and stops at the window's first paint (the app writes the time to the file named by
``VOICEDESK_STARTUP_PROBE`` and closes). The floor is a script that imports
PySide6, shows one QWidget and does the same.

- warm: median of ``--runs`` launches after one unmeasured launch;
- cold: the first launch after the OS file cache is dropped
  (``/proc/sys/vm/drop_caches``, root on Linux); where that is not allowed, the first
  launch with an empty bytecode cache instead, and the table says which.

Displays: Xvfb when it is installed (a real X server paints), else Qt's offscreen
platform. Run: ``.venv/bin/python bench/startup.py``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 3.0

BARE_WINDOW = """
import os, sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

class Probe(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            with open(os.environ["VOICEDESK_STARTUP_PROBE"], "w") as f:
                f.write(repr(time.time()))
            QTimer.singleShot(0, app.quit)
        return False

app = QApplication(sys.argv[:1])
window = QWidget()
window.resize(760, 640)
probe = Probe()
window.installEventFilter(probe)
window.show()
app.exec()
"""


@contextlib.contextmanager
def display() -> Iterator[dict[str, str]]:
    """Environment for the launches: an Xvfb display if possible, else offscreen."""
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        env["QT_QPA_PLATFORM"] = "offscreen"
        yield env
        return
    number = 90 + os.getpid() % 9
    proc = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        env["DISPLAY"] = f":{number}"
        env["QT_QPA_PLATFORM"] = "xcb"
        yield env
    finally:
        proc.terminate()
        proc.wait(5)


def launch(command: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning ``command`` to its window's first paint."""
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Path(tmp) / "shown"
        run_env = dict(env, VOICEDESK_STARTUP_PROBE=str(stamp))
        run_env.setdefault("VOICEDESK_CONFIG_DIR", str(Path(tmp) / "config"))
        run_env.setdefault("VOICEDESK_LOG_DIR", str(Path(tmp) / "logs"))
        started = time.time()
        result = subprocess.run(
            command, env=run_env, capture_output=True, text=True, timeout=60, check=False
        )
        if not stamp.exists():
            raise RuntimeError(
                f"{command} never painted a window (exit {result.returncode}): {result.stderr}"
            )
        return float(stamp.read_text()) - started


def drop_file_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def measure(command: list[str], env: dict[str, str], runs: int) -> tuple[float, str, float]:
    """(cold seconds, how cold was made, warm median seconds)."""
    if drop_file_cache():
        how = "file cache dropped"
        cold = launch(command, env)
    else:
        how = "empty bytecode cache"
        with tempfile.TemporaryDirectory() as prefix:
            cold = launch(command, dict(env, PYTHONPYCACHEPREFIX=prefix))
    launch(command, env)
    warm = statistics.median(launch(command, env) for _ in range(runs))
    return cold, how, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="warm launches per row (median)")
    args = parser.parse_args()
    python = sys.executable
    rows = [
        ("bare PySide6 window (floor)", [python, "-c", BARE_WINDOW]),
        ("voicedesk (first run)", [python, "-m", "voicedesk"]),
        ("voicedesk --demo", [python, "-m", "voicedesk", "--demo"]),
    ]
    with display() as env:
        where = "Xvfb" if env.get("QT_QPA_PLATFORM") == "xcb" else "offscreen"
        results = [(name, *measure(cmd, env, args.runs)) for name, cmd in rows]
    floor_warm = results[0][3]
    print(
        f"Launch to window visible ({where}; {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}); "
        f"warm = median of {args.runs}"
    )
    print(f"| {'':28} | cold, s | warm, s | warm / floor | target |")
    print(f"|{'-' * 30}|---------|---------|--------------|--------|")
    for name, cold, _how, warm in results:
        ratio = warm / floor_warm
        target = (
            ""
            if name.startswith("bare")
            else (f"<= {TARGET_RATIO:.0f}x {'met' if ratio <= TARGET_RATIO else 'MISSED'}")
        )
        print(f"| {name:28} | {cold:7.2f} | {warm:7.2f} | {ratio:11.1f}x | {target} |")
    print(f"cold: {results[0][2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
