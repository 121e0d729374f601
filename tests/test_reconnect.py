"""Continuing after a drop by itself: the console's automatic tries (issue 14, part 2).

A conversation the network cut is continued without a word from the user: after 1 s,
2 s, 4 s, ... a new conversation with the same agent starts and is told the earlier
turns. The tries wait out an outage, stop at once on Enter, and when used up leave the
user the choice to continue by hand. Real console processes over real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.conftest import scaled
from tests.console.test_handsfree_console import Console, close_console, open_console
from voicedesk.history import Recollection
from voicedesk.launch import reconnect
from voicedesk.localagent import AgentConfig, LocalAgentServer
from voicedesk.protocol.errors import DisconnectDetails, DisconnectReason
from voicedesk.protocol.events import UserTranscript
from voicedesk.protocol.machine import Connected, Disconnected

pytestmark = pytest.mark.timeout(120, method="thread")


async def _dropped_after_a_turn(server: LocalAgentServer, *args: str) -> Console:
    console = await open_console(server, "--text-only", *args)
    await console.wait_for("Agent: Hi there")
    await console.send("my name is Ada")
    await console.wait_for("You said: my name is Ada")
    server.sessions[0].drop()
    await console.wait_for("Disconnected: The connection to the agent was lost.")
    return console


async def test_a_dropped_conversation_continues_by_itself_with_its_turns(
    agent: LocalAgentServer,
) -> None:
    console = await _dropped_after_a_turn(agent, "--reconnect-tries", "3")
    try:
        await console.wait_for("Trying to continue in 1 s (try 1 of 3")
        second = await agent.next_session(timeout=scaled(10), after=1)
        await second.wait_for(lambda s: bool(s.contextual_updates), timeout=scaled(5))
        assert "User: my name is Ada" in second.contextual_updates[0]
        await console.wait_for("Agent: Hi there", count=2)
        await console.send("bye")
        await console.wait_for("Agent: Goodbye! Talk to you soon.")
    finally:
        code = await close_console(console)
    assert code == 0, console.out
    assert "Type /continue" not in console.out  # nobody had to ask


async def test_the_tries_wait_out_an_outage() -> None:
    first = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await first.start()
    port = first.port
    console = await _dropped_after_a_turn(first, "--reconnect-tries", "4")
    back = LocalAgentServer(AgentConfig(ping_interval_s=None), port=port)
    try:
        await first.stop()  # the service is gone: the first try fails
        await console.wait_for("Could not start the conversation: The agent service refused")
        await console.wait_for("(try 2 of 4")
        await back.start()  # ... and back on the same address
        session = await back.next_session(timeout=scaled(15))
        await session.wait_for(lambda s: bool(s.contextual_updates), timeout=scaled(5))
        assert "User: my name is Ada" in session.contextual_updates[0]
    finally:
        code = await close_console(console)
        await back.stop()
    assert code == 0, console.out


async def test_enter_stops_the_tries_and_used_up_tries_leave_the_choice() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await server.start()
    port = server.port
    console = await _dropped_after_a_turn(server, "--reconnect-tries", "5")
    back = LocalAgentServer(AgentConfig(ping_interval_s=None), port=port)
    try:
        await server.stop()
        await console.wait_for("Could not start the conversation")
        await console.send("")  # Enter
        await console.wait_for("Stopped trying.")
        await console.wait_for("Type /continue to pick the conversation up")
        await asyncio.sleep(scaled(4.5))  # no further try comes after Enter
        assert "(try " not in console.out.split("Stopped trying.")[1]
        await back.start()
        await console.send("/continue")
        session = await back.next_session(timeout=scaled(10))
        await session.wait_for(lambda s: bool(s.contextual_updates), timeout=scaled(5))
        assert "User: my name is Ada" in session.contextual_updates[0]
    finally:
        code = await close_console(console)
        await back.stop()
    assert code == 0, console.out


async def test_tries_used_up_say_so_and_ask() -> None:
    server = LocalAgentServer(AgentConfig(ping_interval_s=None))
    await server.start()
    console = await _dropped_after_a_turn(server, "--reconnect-tries", "1")
    try:
        await server.stop()
        await console.wait_for("Could not continue the conversation automatically.")
        await console.wait_for("Type /continue to pick the conversation up")
    finally:
        code = await close_console(console)
    assert code == 1, console.out  # it ended with the drop


# --------------------------------------------------------------------------- the parts


def _ended(transient: bool, *, connected: bool) -> Iterator[object]:
    if connected:
        yield Connected("conv_2")
    yield Disconnected(DisconnectDetails(DisconnectReason.ERROR, "gone", transient=transient))


def test_a_continuation_that_cannot_connect_yet_can_still_be_continued() -> None:
    first = Recollection()
    for event in (
        Connected("conv_1"),
        UserTranscript("my name is Ada", 1),
        Disconnected(DisconnectDetails(DisconnectReason.ERROR, "lost")),
    ):
        first(event)  # type: ignore[arg-type]
    assert first.dropped
    failed = Recollection(earlier=first)
    for event in _ended(transient=True, connected=False):
        failed(event)  # type: ignore[arg-type]
    assert failed.dropped  # the network: try again
    assert "conversation conv_1" in failed.context()
    assert "User: my name is Ada" in failed.context()
    refused = Recollection(earlier=failed)
    for event in _ended(transient=False, connected=False):
        refused(event)  # type: ignore[arg-type]
    assert not refused.dropped  # a refused key will not pass by itself
    # Connected, then lost again: the whole thread is told next time.
    second = Recollection(earlier=failed)
    for event in (*_ended(transient=False, connected=True), UserTranscript("and I like tea", 2)):
        second(event)  # type: ignore[arg-type]
    assert "my name is Ada" in second.context()


class _Attempt:
    """What :func:`reconnect` needs of a conversation: start, how it ended, end."""

    def __init__(self, outcome: bool | None, transient: bool = True) -> None:
        self.outcome = outcome  # None: never finishes connecting
        self.last_disconnect = DisconnectDetails(DisconnectReason.ERROR, "x", transient=transient)
        self.ended = False

    async def start(self) -> bool:
        if self.outcome is None:
            await asyncio.Event().wait()
        return bool(self.outcome)

    async def end(self) -> None:
        self.ended = True


async def _run(attempts: list[_Attempt], delays: list[float]) -> tuple[object, list[float]]:
    waits: list[float] = []
    queue = list(attempts)

    async def follow() -> _Attempt:
        return queue.pop(0)

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    result = await reconnect(
        follow,  # type: ignore[arg-type]
        delays,
        on_wait=lambda n, s: None,
        sleep=no_sleep,
    )
    return result, waits


async def test_reconnect_keeps_trying_through_network_failures_only() -> None:
    good = _Attempt(True)
    result, waits = await _run([_Attempt(False), _Attempt(False), good], [1, 2, 4, 8])
    assert result is good
    assert waits == [1, 2, 4]
    result, waits = await _run([_Attempt(False, transient=False), good], [1, 2])
    assert result is None  # a refusal ends the tries at once
    assert waits == [1]
    result, waits = await _run([_Attempt(False), _Attempt(False)], [1, 2])
    assert result is None  # used up
    assert waits == [1, 2]


async def test_stopping_the_tries_ends_a_conversation_still_connecting() -> None:
    hanging = _Attempt(None)
    task = asyncio.ensure_future(_run([hanging], [0]))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hanging.ended
