"""The local demo agent behind the LiveKit stand-in: a WebRTC agent to talk to offline.

:class:`AgentBridge` joins the two as the real service joins its agent to the room: the
client's data packets go to a websocket session with the local agent and its messages
come back as data packets; its voice (``audio`` events) plays on the agent's track, and
the client's microphone track goes to it as ``user_audio_chunk``. As the service, the
bridge sends ``audio`` events' sound only on the track, not as data.

``python -m tests.webrtc.bridge`` serves both on 127.0.0.1 and prints the command that
talks to them; ``--console`` runs that ``voicedesk console`` itself, on this terminal.
Run it inside a network namespace (``python -m tests.webrtc.talk`` does): WebRTC
probes every interface.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from tests.webrtc.standin import LiveKitStandIn, ReceivedData
from voicedesk.audio.codec import resample_linear
from voicedesk.localagent import AgentConfig, LocalAgentServer
from voicedesk.protocol.formats import parse_audio_format

RATE = 48000  # the room's audio, both ways
AGENT_ID = "demo"


class AgentBridge:
    """Relays one conversation between the stand-in's room and the local agent."""

    def __init__(self, agent: LocalAgentServer, standin: LiveKitStandIn) -> None:
        self.agent = agent
        self.standin = standin
        standin.on_data = self._from_client
        standin.on_microphone = self._from_microphone
        self._ws: ClientConnection | None = None
        self._pending: list[str] = []
        self._output_rate = 16000
        self._input_rate = 16000
        self._tasks: set[asyncio.Task[None]] = set()

    def _from_client(self, packet: ReceivedData) -> None:
        text = packet.payload.decode("utf-8", "replace")
        if self._ws is None:
            self._pending.append(text)
            if len(self._pending) == 1:
                self._spawn(self._open())
            return
        self._spawn(self._ws.send(text))

    def _from_microphone(self, samples: Any) -> None:
        if self._ws is None:
            return
        pcm = resample_linear(np.asarray(samples, dtype=np.int16), RATE, self._input_rate)
        chunk = base64.b64encode(pcm.astype("<i2").tobytes()).decode("ascii")
        self._spawn(self._ws.send(json.dumps({"user_audio_chunk": chunk})))

    async def _open(self) -> None:
        ws = await connect(self.agent.ws_url(AGENT_ID), max_size=2**24)
        self._ws = ws
        pending, self._pending = self._pending, []
        for text in pending:
            await ws.send(text)
        self._spawn(self._relay(ws))

    async def _relay(self, ws: ClientConnection) -> None:
        """The agent's messages to the room; its voice to the agent's track."""
        with contextlib.suppress(Exception):
            async for frame in ws:
                message = json.loads(frame)
                kind = message.get("type")
                if kind == "conversation_initiation_metadata":
                    event = message["conversation_initiation_metadata_event"]
                    out = event.get("agent_output_audio_format", "pcm_16000")
                    self._output_rate = parse_audio_format(out).sample_rate
                    inp = event.get("user_input_audio_format", "pcm_16000")
                    self._input_rate = parse_audio_format(inp).sample_rate
                elif kind == "audio":
                    data = base64.b64decode(message["audio_event"].get("audio_base_64") or "")
                    samples = np.frombuffer(data, dtype="<i2")
                    self.standin.play(resample_linear(samples, self._output_rate, RATE))
                    continue  # the sound travels on the track only
                elif kind == "interruption":
                    self.standin.voice.clear()
                await self.standin.send_data(json.dumps(message).encode())
        # The agent ended the call: it leaves the room, as the service's agent does.
        with contextlib.suppress(Exception):
            await self.standin.agent_leave()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def serve(console_args: list[str] | None) -> int:
    agent = LocalAgentServer(AgentConfig())
    await agent.start()
    standin = LiveKitStandIn(
        room_name=f"RM_conv_{abs(hash(agent.http_url)) % 10**8:08d}", check_contract=True
    )
    await standin.start()
    bridge = AgentBridge(agent, standin)
    command = [
        "voicedesk",
        "console",
        "--server-url",
        agent.http_url,
        "--agent-id",
        AGENT_ID,
        "--transport",
        "webrtc",
        "--livekit-url",
        standin.url,
    ]
    try:
        if console_args is None:
            print(f"The local agent (token, brain): {agent.http_url}", flush=True)
            print(f"Its LiveKit room:               {standin.url}", flush=True)
            print("Talk to it (in this namespace): " + " ".join(command), flush=True)
            await asyncio.Event().wait()
            return 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voicedesk", *command[1:], *console_args
        )
        code = await proc.wait()
        # Every data packet of the call, both ways, against the official contract.
        for violation in standin.contract_violations:
            print(f"contract violation: {violation}", file=sys.stderr, flush=True)
        print(f"contract: {standin.contract_checked} data packets checked", file=sys.stderr)
        return code or (3 if standin.contract_violations else 0)
    finally:
        await bridge.close()
        await standin.stop()
        await agent.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--console",
        nargs=argparse.REMAINDER,
        help="run voicedesk console against them (more console options may follow)",
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(args.console))
    return 0


if __name__ == "__main__":
    sys.exit(main())
