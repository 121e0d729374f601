"""Throw-away Linux network namespaces for WebRTC tests.

WebRTC's ICE gathers a candidate on every network interface it can see and probes them, and
the tests may only send traffic to loopback or to namespaces they create themselves. So a test
that runs a real WebRTC stack creates a fresh namespace (only ``lo``, brought up), runs the
stack inside it with ``ip netns exec``, and removes the namespace afterwards, even on failure.

Needs root (or CAP_SYS_ADMIN) and iproute2's ``ip``. When either is missing,
:class:`NamespaceUnavailable` says so in a sentence.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Every namespace made here starts with this, so a leftover one is easy to recognise.
NAME_PREFIX = "voicedesk-lk-"

#: The address ICE uses inside a namespace (RFC 1918, on a veth pair that never leaves it).
PRIVATE_ADDRESS = "10.77.0.1"
VETH_NAMES = ("vdlk0", "vdlk1")

#: The project root: scripts run inside a namespace are started from here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class NamespaceUnavailable(RuntimeError):
    """This machine or user cannot create network namespaces."""


@dataclass(frozen=True)
class ScriptResult:
    """What a process run inside a namespace left behind."""

    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float


def _ip_command() -> str:
    ip = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.access(p, os.X_OK)), None
    )
    if ip is None:
        raise NamespaceUnavailable(
            "The 'ip' command (iproute2) is not installed, so no network namespace can be made "
            "for the WebRTC tests; install it with 'apt-get install iproute2'."
        )
    return ip


def unavailable_reason() -> str | None:
    """Why namespaces cannot be created here, or None when they can (a cheap check)."""
    if not sys.platform.startswith("linux"):
        return "Network namespaces exist only on Linux; the WebRTC tests need one."
    if os.geteuid() != 0:
        return (
            "Creating a network namespace needs root; run the WebRTC tests as root "
            "(or in a container where you are root)."
        )
    try:
        _ip_command()
    except NamespaceUnavailable as exc:
        return str(exc)
    return None


def _run_ip(ip: str, *args: str) -> None:
    completed = subprocess.run([ip, *args], capture_output=True, text=True, timeout=10, check=False)
    if completed.returncode != 0:
        raise NamespaceUnavailable(
            f"'ip {' '.join(args)}' failed ({completed.stderr.strip() or completed.returncode}); "
            "this machine does not let the tests create a network namespace."
        )


def _disable_ipv6(ip: str, name: str) -> None:
    # Best effort: /proc/sys/net is per namespace; without IPv6 no fe80:: candidate appears.
    for key in ("all", "default", "lo"):
        path = f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6"
        subprocess.run(
            [ip, "netns", "exec", name, "sh", "-c", f"test -w {path} && echo 1 > {path}"],
            capture_output=True,
            timeout=10,
            check=False,
        )


class NetworkNamespace:
    """A fresh namespace with only ``lo`` up. Use :func:`network_namespace` to get one."""

    def __init__(self, name: str, ip: str) -> None:
        self.name = name
        self._ip = ip

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped so that it runs inside this namespace."""
        return [self._ip, "netns", "exec", self.name, *argv]

    def run_python(
        self,
        module: str,
        args: Sequence[str] = (),
        *,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> ScriptResult:
        """Run ``python -m module args`` (this interpreter) inside the namespace, from the
        project root, and wait for it. A process still running after ``timeout_s`` is killed
        and reported with return code -9."""
        import time

        started = time.monotonic()
        argv = self.command([sys.executable, "-m", module, *args])
        full_env = {**os.environ, **(env or {})}
        try:
            completed = subprocess.run(
                argv,
                cwd=PROJECT_ROOT,
                env=full_env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return ScriptResult(
                -9, _text(exc.stdout), _text(exc.stderr), time.monotonic() - started
            )
        return ScriptResult(
            completed.returncode, completed.stdout, completed.stderr, time.monotonic() - started
        )

    async def run_python_async(
        self,
        module: str,
        args: Sequence[str] = (),
        *,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> ScriptResult:
        """As :meth:`run_python`, without blocking the event loop."""
        return await asyncio.to_thread(self.run_python, module, args, timeout_s=timeout_s, env=env)

    def interfaces(self) -> list[str]:
        """The names of the interfaces inside the namespace (for checks)."""
        completed = subprocess.run(
            self.command([self._ip, "-o", "link", "show"]),
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return [line.split(":")[1].strip().split("@")[0] for line in completed.stdout.splitlines()]


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


@contextmanager
def network_namespace() -> Iterator[NetworkNamespace]:
    """Create a namespace with a unique name and ``lo`` up; delete it on the way out.

    WebRTC stacks (aioice, libwebrtc) never gather a candidate on a loopback address, so the
    namespace also gets a veth pair whose both ends stay inside it, one end holding
    :data:`PRIVATE_ADDRESS`: the only address ICE can use, reachable from nowhere else.
    IPv6 is switched off inside, so that no link-local candidate is gathered either.

    Raises :class:`NamespaceUnavailable` with a sentence when it cannot be made.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise NamespaceUnavailable(reason)
    ip = _ip_command()
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:10]}"
    _run_ip(ip, "netns", "add", name)
    try:
        _run_ip(ip, "-n", name, "link", "set", "lo", "up")
        _disable_ipv6(ip, name)
        _run_ip(
            ip,
            "-n",
            name,
            "link",
            "add",
            VETH_NAMES[0],
            "type",
            "veth",
            "peer",
            "name",
            VETH_NAMES[1],
        )
        _run_ip(ip, "-n", name, "addr", "add", f"{PRIVATE_ADDRESS}/24", "dev", VETH_NAMES[0])
        for link in VETH_NAMES:
            _run_ip(ip, "-n", name, "link", "set", link, "up")
        yield NetworkNamespace(name, ip)
    finally:
        # Processes still inside keep nothing alive: the name goes, and the namespace with
        # its last process. Deleting is best effort so that it never hides the real error.
        subprocess.run([ip, "netns", "delete", name], capture_output=True, timeout=10, check=False)
