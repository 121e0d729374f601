"""Talk to the local demo agent over WebRTC, offline, from this terminal.

    sudo .venv/bin/python -m tests.webrtc.talk [console options, e.g. --text-only]

Makes a network namespace of its own (WebRTC probes every interface; in it there is only
``lo`` and a private veth pair), serves the LiveKit stand-in and the local agent in it
(:mod:`tests.webrtc.bridge`), runs ``voicedesk console --transport webrtc`` against them
on this terminal, and removes the namespace when the console ends. Sound goes through
the sound server of this session (a PulseAudio socket is a file, which a network
namespace does not hide).
"""

from __future__ import annotations

import subprocess
import sys

from tests.webrtc.netns import PROJECT_ROOT, network_namespace


def main(argv: list[str]) -> int:
    with network_namespace() as namespace:
        command = namespace.command(
            [sys.executable, "-m", "tests.webrtc.bridge", "--console", *argv]
        )
        return subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
