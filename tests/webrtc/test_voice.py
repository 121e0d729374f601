"""voicedesk's WebRTC transport end to end: a conversation with ``transport="webrtc"``,
the real audio engine through the null sinks, the real ``livekit`` SDK, and the LiveKit
stand-in, all inside a fresh network namespace (``tests/webrtc/voice_scenario.py``)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from tests import contract
from tests.audio.pulse import SinkRecorder
from tests.conftest import scaled
from tests.webrtc.conftest import Runner, require_namespaces
from tests.webrtc.netns import PRIVATE_ADDRESS, PROJECT_ROOT, network_namespace

pytestmark = [pytest.mark.usefixtures("pulse"), pytest.mark.timeout(120, method="thread")]
#: The websocket's barge-in budget (tests/audio/test_engine.py): silent within this.
BARGE_IN_BUDGET_MS = 100


def test_a_voice_conversation_over_webrtc(namespace_runner: Runner) -> None:
    m = namespace_runner("tests.webrtc.voice_scenario", timeout_s=60)
    # Connected through the token the service gave, the conversation named by the room.
    assert m["connected"]
    assert m["conversation_id"] == "conv_0a1b2c3d"
    assert m["token_from_the_service"]
    assert m["initiation_first"]
    # The agent's 1 kHz tone comes out of the speaker at 1 kHz.
    assert abs(m["speaker_hz"] - 1000) < 20
    # A 440 Hz tone played into the microphone reached the agent as an audible track,
    # never as user_audio_chunk messages.
    assert abs(m["microphone_hz"] - 440) < 10
    assert m["no_audio_messages"]
    # A client tool call round-trips as data packets.
    assert m["tool_result"] == "noon"
    # Switching the speaker mid-reply keeps the agent's voice flowing.
    assert abs(m["after_switch_hz"] - 1000) < 20
    # Barge-in silences the speaker within the websocket's budget.
    assert m["barge_in_ms"] <= BARGE_IN_BUDGET_MS, m
    # The agent leaving ends the call as ended by the agent.
    assert m["ended_by"] == "agent"
    # Every data packet, both ways, followed the official contract.
    assert m["contract_violations"] == []
    if contract.available():
        assert m["contract_checked"] >= 8, "the room's data packets were not validated"
    # ICE stayed inside the namespace.
    addresses = {line.split()[4] for line in m["client_candidates"]}
    assert addresses == {PRIVATE_ADDRESS}
    assert all(ipaddress.ip_address(a).is_private for a in addresses)


def test_the_console_holds_a_spoken_conversation_over_webrtc() -> None:
    """``voicedesk console --transport webrtc`` with the local demo agent behind the
    LiveKit stand-in (tests/webrtc/bridge.py), in a namespace: the agent's voice comes
    out of the speaker sink, a tool runs, the agent ends the call."""
    require_namespaces()
    speaker = SinkRecorder("speaker")
    try:
        with network_namespace() as namespace:
            command = namespace.command([sys.executable, "-m", "tests.webrtc.bridge", "--console"])
            result = subprocess.run(
                command,
                cwd=PROJECT_ROOT,
                input="what's my battery?\nbye\n",
                capture_output=True,
                text=True,
                timeout=scaled(90),
                check=False,
            )
    finally:
        speaker.stop()
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr[-4000:]}"
    assert "contract violation" not in result.stderr, result.stderr[-4000:]
    assert "Connected (voice and text" in out, out
    assert "[connection]" not in out, "WebRTC was used, not the websocket"
    assert "Agent: Hi there" in out
    assert "[tool] getBatteryLevel" in out
    assert "Agent: Goodbye! Talk to you soon." in out
    assert "Disconnected: The agent ended the conversation." in out
    # The demo agent's espeak-ng voice reached the speaker through the room's track.
    loud = speaker.loud_block_times(threshold=3000)
    assert len(loud) > 50, "the agent's voice was not heard on the speaker sink"
