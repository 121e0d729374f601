"""Shared fixtures: isolation from the user's settings, thread-leak checks, time scaling."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

#: Multiply every timeout in the tests by this on slow machines (VOICEDESK_TEST_TIME_SCALE=3).
TIME_SCALE = float(os.environ.get("VOICEDESK_TEST_TIME_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings and logs of a test go to its own folder, never the user's."""
    monkeypatch.setenv("VOICEDESK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("VOICEDESK_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.delenv("ELEVENLABS_AGENT_ID", raising=False)


_ALLOWED_THREAD_PREFIXES = ("asyncio_", "ThreadPoolExecutor", "pydevd", "Dummy")


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread of ours running (napari's habit)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + scaled(2.0)
    while True:
        leaked = [
            t
            for t in set(threading.enumerate()) - before
            if t.is_alive() and not t.name.startswith(_ALLOWED_THREAD_PREFIXES)
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture
async def agent() -> AsyncIterator[object]:
    from voicedesk.localagent import AgentConfig, LocalAgentServer

    server = LocalAgentServer(AgentConfig(ping_interval_s=0.2))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
