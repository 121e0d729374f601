"""The fault matrix's fixtures: each case bounded in time, its resources counted before
and after, its result written to the matrix, its output kept for the secrets check
(which runs after every other test of the session)."""

from __future__ import annotations

import gc
import logging
import shutil
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import scaled
from tests.faults import matrix

#: No case may take longer than this (the whole matrix runs in CI with the rest).
CASE_TIMEOUT_S = 30


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault(name): a case of the fault matrix")
    config.addinivalue_line(
        "markers", "after_everything: runs after every other test of the session"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    """The secrets check goes last (after the soak too, when it runs); a run with fault
    cases starts with no evidence from an earlier run."""
    last = [item for item in items if item.get_closest_marker("after_everything")]
    for item in last:
        items.remove(item)
    items.extend(last)
    if any(item.get_closest_marker("fault") for item in items) or last:
        shutil.rmtree(matrix.evidence_dir(), ignore_errors=True)
    for item in items:
        if item.get_closest_marker("fault") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(scaled(CASE_TIMEOUT_S)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    case: matrix.FaultCase | None = getattr(item, "_fault_case", None)
    if case is None:
        return
    failures: list[str] = item.__dict__.setdefault("_fault_failures", [])
    if report.failed:
        failures.append(f"{report.when}: {str(report.longrepr).strip().splitlines()[-1]}")
    if report.when == "teardown":
        matrix.record(case, not failures, "; ".join(failures) or None)


def _close_log_files() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_voicedesk", False):
            root.removeHandler(handler)
            handler.close()


@pytest.fixture(scope="session")
def audio_warmed(pulse: None) -> None:
    """PortAudio's first start opens descriptors it keeps for the process (ALSA's and
    PulseAudio's): open and close the devices once, before any case counts them."""
    import asyncio

    from voicedesk.audio.engine import AudioEngine
    from voicedesk.audio.settings import AudioSettings

    async def warm() -> None:
        engine = AudioEngine(AudioSettings())
        await engine.prepare()
        await engine.listen()
        await asyncio.sleep(0.3)
        await engine.close()

    asyncio.run(warm())


@pytest.fixture
def fault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[matrix.FaultCase]:
    """The running case: logs go to the test's own log folder as the app writes them;
    afterwards the descriptors and sockets must be back where they were, and what the
    app wrote is kept as evidence."""
    from voicedesk.config import setup_logging

    marker = request.node.get_closest_marker("fault")
    assert marker is not None, "a fault case needs @pytest.mark.fault(name)"
    name = str(marker.args[0])
    assert name in dict(matrix.CASES), f"{name!r} is not a case of the matrix"
    if "pulse" in request.fixturenames:
        request.getfixturevalue("audio_warmed")
    gc.collect()
    case = matrix.FaultCase(name, tmp_path, baseline=matrix.open_resources())
    request.node._fault_case = case
    levels = {name: logging.getLogger(name).level for name in ("", "websockets")}
    setup_logging("INFO")
    try:
        yield case
    finally:
        _close_log_files()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        matrix.keep_files(name, *(p for p in tmp_path.iterdir() if p.is_dir()))
        matrix.keep_evidence(name, "seen.txt", "\n".join(case.seen) + "\n")
    deadline = time.monotonic() + scaled(3)
    while not _released(now := matrix.open_resources(), case.baseline):
        if time.monotonic() > deadline:
            break
        gc.collect()
        time.sleep(0.05)
    assert _released(now, case.baseline), (
        f"descriptors/sockets not released: {case.baseline} before, {now} after"
    )
    assert case.seen, "the case recorded nothing the user saw"


def _released(now: tuple[int, int], before: tuple[int, int]) -> bool:
    return now[0] <= before[0] and now[1] <= before[1]
