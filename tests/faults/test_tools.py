"""The matrix, client tools: one that raises, one that hangs past its timeout, one that
returns something that is not a string; the battery and screen tools on a computer
without a battery or a controllable screen. The local agent calls them as the service
does; the console shows the line the user reads and the conversation goes on."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import pytest

from tests.faults.client import assert_history_kept, console_call
from tests.faults.matrix import FaultCase
from voicedesk.app import build_tools
from voicedesk.localagent import AgentConfig, LocalAgentServer
from voicedesk.tools import ToolRegistry
from voicedesk.tools.registry import ClientTool, ToolDefinition

HANG_TIMEOUT_S = 1.0


def _raises(parameters: Mapping[str, Any]) -> str:
    raise RuntimeError("the lamp's driver crashed")


def _hangs(parameters: Mapping[str, Any]) -> str:
    time.sleep(HANG_TIMEOUT_S + 0.5)  # past its timeout; its thread ends soon after
    return "too late"


def _not_a_string(parameters: Mapping[str, Any]) -> Any:
    return {"level": 0.5, "lamps": [1, 2], "ok": True}


def _tools() -> ToolRegistry:
    tools = build_tools()
    for name, handler, timeout in (
        ("dimLamp", _raises, 3.0),
        ("slowLamp", _hangs, HANG_TIMEOUT_S),
        ("lampState", _not_a_string, 3.0),
    ):
        tools.register(ClientTool(ToolDefinition(name, "a lamp", timeout_s=timeout), handler))
    return tools


async def _tool_case(
    fault: FaultCase, name: str, parameters: dict[str, Any] | None = None
) -> tuple[str, Any, list[str]]:
    """Call ``name`` from the agent; the line the console printed for its end, what the
    agent got, and every console line (the conversation went on after it)."""
    async with (
        LocalAgentServer(AgentConfig(ping_interval_s=None, tool_timeout_s=5.0)) as server,
        console_call(fault, server.http_url, "--text-only", tools=_tools) as call,
    ):
        session = server.sessions[0]
        await call.line("Agent: Hi there")
        fault.inject()
        result = await session.call_tool(name, parameters)
        shown = await call.saw(f"[tool] {name} ", timeout=5)
        call.type("hello")  # and the conversation goes on
        await call.line("Agent: Hello!")
        assert call.conversation.status.value == "connected"
        return shown, result, call.lines()


@pytest.mark.fault("tool raises")
async def test_a_tool_that_raises(fault: FaultCase) -> None:
    shown, result, _ = await _tool_case(fault, "dimLamp")
    assert re.fullmatch(r"\[tool\] dimLamp failed: the lamp's driver crashed \[\d+ ms\]", shown)
    assert result is not None
    assert result.is_error
    assert_history_kept(fault, "the lamp's driver crashed", "hello")


@pytest.mark.fault("tool hangs")
async def test_a_tool_that_hangs_past_its_timeout(fault: FaultCase) -> None:
    shown, result, _ = await _tool_case(fault, "slowLamp")
    expected = r"\[tool\] slowLamp failed: slowLamp did not finish within 1 s\. \[1\d\d\d ms\]"
    assert re.fullmatch(expected, shown)
    assert result is not None
    assert result.is_error
    assert fault.recovery_s is not None
    assert fault.recovery_s < HANG_TIMEOUT_S + 0.5
    assert_history_kept(fault, "slowLamp did not finish within 1 s.", "hello")


@pytest.mark.fault("tool returns a non-string")
async def test_a_tool_that_returns_a_dict(fault: FaultCase) -> None:
    shown, result, _ = await _tool_case(fault, "lampState")
    as_json = '{"level":0.5,"lamps":[1,2],"ok":true}'
    assert re.fullmatch(rf"\[tool\] lampState -> {re.escape(as_json)} \[\d+ ms\]", shown)
    assert result is not None
    assert result.result == as_json
    assert result.is_error is False
    assert_history_kept(fault, as_json, "hello")


@pytest.mark.fault("no battery")
async def test_no_battery(fault: FaultCase) -> None:
    import psutil

    if psutil.sensors_battery() is not None:
        pytest.skip("this computer has a battery")
    shown, result, _ = await _tool_case(fault, "getBatteryLevel")
    said = "This computer has no battery, so I can't read a battery level."
    assert re.fullmatch(rf"\[tool\] getBatteryLevel failed: {re.escape(said)} \[\d+ ms\]", shown)
    assert result is not None
    assert result.is_error
    assert_history_kept(fault, said, "hello")


@pytest.mark.fault("no controllable screen")
async def test_no_controllable_screen(fault: FaultCase) -> None:
    import screen_brightness_control

    if screen_brightness_control.list_monitors():
        pytest.skip("this computer has a screen whose brightness software can control")
    shown, result, _ = await _tool_case(fault, "changeBrightness", {"brightness": 0.3})
    said = (
        "I can't change the brightness here: no screen on this computer lets software "
        "control its brightness."
    )
    assert re.fullmatch(rf"\[tool\] changeBrightness failed: {re.escape(said)} \[\d+ ms\]", shown)
    assert result is not None
    assert result.is_error
    assert_history_kept(fault, said, "hello")
