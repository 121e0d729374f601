"""The namespace runner shared by the LiveKit stand-in tests: each scenario runs in a
subprocess inside a fresh network namespace (WebRTC probes every interface; the namespace
has only ``lo`` and a private veth pair), so the test process never touches WebRTC.
Without namespaces (not root, no ``ip``) or without aiortc / livekit-protocol, the tests
skip with the reason, and fail with it when ``CI=true``."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import scaled
from tests.webrtc.netns import network_namespace, unavailable_reason

_REQUIRED_MODULES = {
    "aiortc": "aiortc",
    "livekit.protocol": "livekit-protocol",
    "livekit.rtc": "livekit",
}

Runner = Callable[..., dict[str, Any]]


def missing_requirement() -> str | None:
    reason = unavailable_reason()
    if reason is not None:
        return reason
    for module, package in _REQUIRED_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return (
                f"The Python package {package!r} is not installed; the LiveKit stand-in needs "
                "it (it belongs in the project's dev dependencies)."
            )
    return None


def require_namespaces() -> None:
    reason = missing_requirement()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"The LiveKit stand-in tests cannot run on CI: {reason}")
        pytest.skip(reason)


@pytest.fixture
def namespace_runner() -> Runner:
    """``run(module, *args, timeout_s=30)``: ``python -m module args`` in a fresh
    namespace; its last stdout line parsed as JSON (the scenario's measurements), which
    must say ``ok``."""
    require_namespaces()

    def run(module: str, *args: str, timeout_s: float = 30.0) -> dict[str, Any]:
        with network_namespace() as namespace:
            result = namespace.run_python(module, list(args), timeout_s=scaled(timeout_s))
        lines = result.stdout.strip().splitlines()
        measured: dict[str, Any] = {}
        if lines:
            try:
                measured = json.loads(lines[-1])
            except json.JSONDecodeError:
                measured = {}
        failure = (
            f"{module} {' '.join(args)} failed (exit {result.returncode} after "
            f"{result.elapsed_s:.1f} s): {measured or result.stdout[-2000:]}\n"
            f"--- its log ---\n{result.stderr[-6000:]}"
        )
        assert result.returncode == 0, failure
        assert measured.get("ok"), failure
        return measured

    return run
