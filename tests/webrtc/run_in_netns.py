"""Run a scenario of :mod:`tests.webrtc.scenario` inside a fresh network namespace.

    python -m tests.webrtc.run_in_netns conversation [-v]

Creates the namespace, runs the scenario in it, prints its output, deletes the namespace.
"""

from __future__ import annotations

import sys

from tests.webrtc.netns import network_namespace


def main(argv: list[str]) -> int:
    with network_namespace() as namespace:
        result = namespace.run_python("tests.webrtc.scenario", argv, timeout_s=60)
    sys.stderr.write(result.stderr)
    sys.stdout.write(result.stdout)
    print(f"# {namespace.name}: exit {result.returncode} in {result.elapsed_s:.1f} s")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
