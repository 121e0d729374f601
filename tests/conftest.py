"""Shared fixtures: isolation from the user's settings, thread-leak checks, time scaling,
and the check of every frame the local agent sends or receives against the official contract."""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import contract

#: Multiply every timeout in the tests by this on slow machines (VOICEDESK_TEST_TIME_SCALE=3).
TIME_SCALE = float(os.environ.get("VOICEDESK_TEST_TIME_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings and logs of a test go to its own folder, never the user's."""
    monkeypatch.setenv("VOICEDESK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("VOICEDESK_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("VOICEDESK_HISTORY_DIR", str(tmp_path / "history"))
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


async def _local_agent(ping_interval_s: float | None) -> AsyncIterator[Any]:
    from voicedesk.localagent import AgentConfig, LocalAgentServer

    server = LocalAgentServer(AgentConfig(ping_interval_s=ping_interval_s))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def agent() -> AsyncIterator[object]:
    """The local agent on a free port, pinging every 0.2 s."""
    async for server in _local_agent(0.2):
        yield server


@pytest.fixture
async def quiet_agent() -> AsyncIterator[object]:
    """The local agent on a free port, never pinging (tests that count the frames sent,
    or run long against it)."""
    async for server in _local_agent(None):
        yield server


# --------------------------------------------------------------------------- the official contract

#: Per test and message type: the first frames are always validated, later ones only when
#: their shape (keys and value types) is new, up to a cap. Audio chunks come by the hundred.
_CONTRACT_FIRST_PER_TYPE = 3
_CONTRACT_MAX_PER_TYPE = 20
_CONTRACT_VIOLATIONS_SHOWN = 5


@dataclass
class _ContractTally:
    observed: int = 0
    checked: int = 0
    violations: int = 0
    seen: dict[str, set[str]] = field(default_factory=lambda: {"server": set(), "client": set()})


_contract_tally = _ContractTally()


def _frame_shape(node: Any) -> Hashable:
    if isinstance(node, dict):
        return tuple((k, _frame_shape(node[k])) for k in sorted(node, key=str))
    if isinstance(node, list):
        return ("[]", frozenset(_frame_shape(v) for v in node[:4]))
    return type(node).__name__


@pytest.fixture(autouse=True)
def _frames_follow_the_contract(request: pytest.FixtureRequest) -> Iterator[None]:
    """Validate the frames the local agent sends, and those clients send it, against the
    official contract (when ``../shared/reference/agent.asyncapi.yaml`` is there).

    Tests that make either side break the contract on purpose are marked
    ``@pytest.mark.contract_violation``.
    """
    if not contract.available() or request.node.get_closest_marker("contract_violation"):
        yield
        return
    from voicedesk.localagent import server

    lock = threading.Lock()
    counts: Counter[tuple[str, str]] = Counter()
    shapes: dict[tuple[str, str], set[Hashable]] = {}
    kept: list[tuple[str, str, Any]] = []

    def observe(direction: str, message: Any) -> None:
        direction = str(direction)
        key = contract.key_of(message) or "?"
        shape = _frame_shape(message)
        with lock:
            _contract_tally.observed += 1
            _contract_tally.seen.setdefault(direction, set()).add(key)
            n = counts[direction, key]
            counts[direction, key] += 1
            known = shapes.setdefault((direction, key), set())
            if n >= _CONTRACT_MAX_PER_TYPE or (n >= _CONTRACT_FIRST_PER_TYPE and shape in known):
                return
            known.add(shape)
            kept.append((direction, key, copy.deepcopy(message)))

    server.frame_observers.append(observe)
    try:
        yield
    finally:
        server.frame_observers.remove(observe)
    with lock:
        frames = list(kept)
    violations = []
    for direction, key, message in frames:
        violations += [(direction, key, e, message) for e in contract.validate(direction, message)]
    _contract_tally.checked += len(frames)
    _contract_tally.violations += len(violations)
    if violations:
        lines = [
            f"{len(violations)} contract violation(s) in frames the local agent sent or received "
            f"(contract: {contract.path()}; mark the test @pytest.mark.contract_violation "
            "if it breaks the contract on purpose):"
        ]
        for direction, key, error, message in violations[:_CONTRACT_VIOLATIONS_SHOWN]:
            lines.append(f"  {direction} {key}: {error}")
            lines.append(f"      {contract.excerpt(message)}")
        if len(violations) > _CONTRACT_VIOLATIONS_SHOWN:
            lines.append(f"  … and {len(violations) - _CONTRACT_VIOLATIONS_SHOWN} more")
        pytest.fail("\n".join(lines), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line in the log saying the contract check ran, and what it never saw."""
    write = terminalreporter.write_line
    if not contract.available():
        write(f"contract: frames not checked: {contract.skip_reason()}")
        return
    from voicedesk.protocol.catalog import CLIENT_MESSAGES, SERVER_MESSAGES

    seen = _contract_tally.seen
    write(
        f"contract: {_contract_tally.checked} frames checked of {_contract_tally.observed} seen "
        f"({len(seen['server'])} server types, {len(seen['client'])} client types seen), "
        f"{_contract_tally.violations} violations"
    )
    never_server = sorted({m.key for m in SERVER_MESSAGES} - seen["server"])
    never_client = sorted({m.key for m in CLIENT_MESSAGES} - seen["client"])
    write(
        "contract: catalog types never seen: "
        f"server: {', '.join(never_server) or '-'}; client: {', '.join(never_client) or '-'}"
    )


@pytest.fixture(scope="session")
def pulse() -> None:
    """The null-sink sound card: fails where scripts/test runs (VOICEDESK_AUDIO_TESTS=1),
    skips elsewhere."""
    from tests.audio.pulse import pulse_ready

    if pulse_ready():
        return
    message = (
        'no PulseAudio null sinks: run eval "$(scripts/pulse-null-sinks)" first (scripts/test does)'
    )
    if os.environ.get("VOICEDESK_AUDIO_TESTS") == "1":
        pytest.fail(message)
    pytest.skip(message)
