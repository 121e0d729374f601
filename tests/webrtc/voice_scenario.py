"""voicedesk's own WebRTC path, end to end, inside a network namespace: a
:class:`~voicedesk.session.Conversation` with ``transport="webrtc"`` and the real audio
engine (PulseAudio's null sinks, reached through their unix socket, which no network
namespace hides) talks to :class:`LiveKitStandIn` through the real ``livekit`` SDK.

The stand-in plays a small scripted agent: it greets with a 1 kHz tone, asks for the
``get_time`` client tool when told "what time is it", and speaks until it is
interrupted. Run by ``tests/webrtc/test_voice.py`` (``python -m
tests.webrtc.voice_scenario``); prints its measurements as one JSON line, ``ok`` true
when every check held.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.audio.pulse import SinkRecorder, dominant_hz, play_into, tone
from tests.webrtc.standin import LiveKitStandIn, ReceivedData
from voicedesk.audio.engine import AudioEngine
from voicedesk.audio.settings import AudioSettings
from voicedesk.localagent import AgentConfig, LocalAgentServer
from voicedesk.protocol.errors import DisconnectReason
from voicedesk.protocol.machine import Status
from voicedesk.session import Conversation, ConversationOptions, SessionEvent
from voicedesk.tools import ClientTool, ToolDefinition, ToolRegistry

RATE = 48000
T = TypeVar("T")


class ScriptedAgent:
    """The agent's side of the room: answers what the client sends as data."""

    def __init__(self, standin: LiveKitStandIn) -> None:
        self.standin = standin
        self.received: list[dict[str, Any]] = []
        self.tool_result = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_data(self, packet: ReceivedData) -> None:
        message = json.loads(packet.payload)
        self.received.append(message)
        kind = message.get("type")
        if kind == "conversation_initiation_client_data":
            self._spawn(self.say("Hello from the stand-in.", 1, tone_s=1.5))
        elif kind == "user_message" and "time" in message.get("text", ""):
            self._spawn(
                self.send(
                    {
                        "type": "client_tool_call",
                        "client_tool_call": {
                            "tool_name": "get_time",
                            "tool_call_id": "call_1",
                            "parameters": {},
                            "event_id": 2,
                        },
                    }
                )
            )
        elif kind == "client_tool_result" and not self.tool_result.done():
            self.tool_result.set_result(message)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def say(self, text: str, event_id: int, tone_s: float) -> None:
        await self.send(
            {
                "type": "agent_response",
                "agent_response_event": {"agent_response": text, "event_id": event_id},
            }
        )
        self.standin.play(tone(1000, tone_s, RATE, level=0.3))

    async def send(self, message: dict[str, Any]) -> None:
        await self.standin.send_data(json.dumps(message).encode())

    def types(self) -> list[str]:
        return [str(m.get("type")) for m in self.received]


async def timed(results: dict[str, Any], name: str, step: Callable[[], Awaitable[T]]) -> T:
    started = time.monotonic()
    async with asyncio.timeout(15):
        value = await step()
    results[f"{name}_s"] = round(time.monotonic() - started, 3)
    return value


async def run() -> dict[str, Any]:
    results: dict[str, Any] = {"ok": False}
    tokens = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await tokens.start()
    standin = LiveKitStandIn(room_name="RM_conv_0a1b2c3d", check_contract=True)
    agent = ScriptedAgent(standin)
    standin.on_data = agent.on_data
    await standin.start()
    engine = AudioEngine(AudioSettings(echo_cancellation=True))
    tools = ToolRegistry([ClientTool(ToolDefinition("get_time", "the time"), lambda p: "noon")])
    conversation = Conversation(
        ConversationOptions(
            agent_id="agent_1",
            server_url=tokens.http_url,
            transport="webrtc",
            livekit_url=standin.url,
        ),
        audio=engine,
        tools=tools,
    )
    events: list[SessionEvent] = []
    conversation.add_listener(events.append)
    speaker = SinkRecorder("speaker")
    try:
        started = await timed(results, "connect", conversation.start)
        results["connected"] = started and conversation.status is Status.CONNECTED
        results["conversation_id"] = conversation.conversation_id
        results["token_from_the_service"] = bool(standin.tokens) and all(
            t.removeprefix("Bearer ").strip() in tokens.tokens for t in standin.tokens
        )

        # The greeting's 1 kHz tone comes out of the speaker.
        since = time.monotonic()
        heard_at = await timed(results, "agent_tone", lambda: _loud(speaker, since))
        await asyncio.sleep(0.6)
        greeting = speaker.audio(since=heard_at + 0.1, until=heard_at + 0.6)
        results["speaker_hz"] = round(dominant_hz(greeting, RATE), 1) if greeting.size else 0.0

        # Speech into the microphone arrives at the agent as an audible track.
        mark = time.monotonic()
        play_into(tone(440, 1.0, 16000, level=0.3), 16000).wait(5)
        spoken = await timed(
            results, "microphone", lambda: standin.wait_for_microphone(min_duration_s=0.3)
        )
        results["microphone_hz"] = round(dominant_hz(spoken, RATE), 1)
        results["microphone_after_s"] = round(time.monotonic() - mark, 2)

        # A tool call round-trips as data.
        conversation.send_user_message("what time is it?")
        result = await timed(results, "tool", lambda: agent.tool_result)
        results["tool_result"] = result.get("result")
        results["no_audio_messages"] = "user_audio_chunk" not in agent.types()
        results["initiation_first"] = agent.types()[:1] == ["conversation_initiation_client_data"]

        # Switching the speaker mid-reply: the agent's voice goes on, on the new device.
        await agent.say("Still talking.", 4, tone_s=3.0)
        await _loud(speaker, time.monotonic())
        old = engine.output_device
        other = "pulse" if old is None or old.name != "pulse" else "default"
        await engine.switch_devices(output_device=other)
        switched_at = time.monotonic()
        await asyncio.sleep(1.2)
        after = speaker.audio(since=switched_at + 0.4, until=switched_at + 1.2)
        results["switched_to"] = engine.output_device.name if engine.output_device else None
        results["after_switch_hz"] = round(dominant_hz(after, RATE), 1) if after.size else 0.0
        standin.voice.clear()
        await asyncio.sleep(1.0)  # the hangover: the next reply starts from silence

        # Barge-in: the agent speaks, is interrupted, and the speaker falls silent.
        loud_since = time.monotonic()
        await agent.say("A long answer.", 3, tone_s=6.0)
        heard_at = await _loud(speaker, loud_since)
        results["agent_to_speaker_ms"] = round(1000 * (heard_at - loud_since))
        await asyncio.sleep(0.5)
        standin.voice.clear()
        cut = time.monotonic()
        await agent.send({"type": "interruption", "interruption_event": {"event_id": 3}})
        quiet_at = await timed(results, "barge_in", lambda: _quiet(speaker, cut))
        results["barge_in_ms"] = round(1000 * (quiet_at - cut))

        # The agent leaves: the call is over, ended by the agent.
        await standin.agent_leave()
        details = await timed(results, "agent_leave", conversation.wait_disconnected)
        results["ended_by"] = details.reason.value if details else None
        results["ok"] = bool(
            results["connected"]
            and results["conversation_id"] == "conv_0a1b2c3d"
            and results["token_from_the_service"]
            and abs(results["speaker_hz"] - 1000) < 20
            and abs(results["microphone_hz"] - 440) < 10
            and results["tool_result"] == "noon"
            and results["switched_to"] == other
            and abs(results["after_switch_hz"] - 1000) < 20
            and results["no_audio_messages"]
            and results["initiation_first"]
            and details is not None
            and details.reason is DisconnectReason.AGENT
        )
        results["client_candidates"] = standin.client_candidates
    finally:
        speaker.stop()
        await conversation.end()
        await engine.close()
        await standin.stop()
        await tokens.stop()
    # Every JSON message that crossed the room, both ways, against the official contract.
    results["contract_checked"] = standin.contract_checked
    results["contract_violations"] = standin.contract_violations
    results["ok"] = results["ok"] and not standin.contract_violations
    return results


async def _loud(speaker: SinkRecorder, since: float) -> float:
    while True:
        times = speaker.loud_block_times(threshold=2000, since=since)
        if times:
            return times[0]
        await asyncio.sleep(0.01)


async def _quiet(speaker: SinkRecorder, since: float, quiet_s: float = 0.15) -> float:
    """When the speaker went quiet (for ``quiet_s`` at least) after ``since``."""
    while True:
        await asyncio.sleep(0.02)
        now = time.monotonic()
        loud = speaker.loud_block_times(threshold=2000, since=since)
        last = loud[-1] if loud else since
        if now - last >= quiet_s:
            return last


def main() -> int:
    results = asyncio.run(run())
    print(json.dumps(results, default=str))
    return 0 if results.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
