"""The three desktop tools end to end: the agent asks, the session calls, the user sees."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from typing import Any

from tests.console.test_console import run_cli
from tests.session.helpers import make
from tests.tools.test_brightness import FakeSbc
from tests.tools.test_flash import RecordingSurface
from voicedesk.localagent import LocalAgentServer
from voicedesk.protocol.events import AgentResponse
from voicedesk.session.events import ToolCallFinished
from voicedesk.tools.battery import BatteryStatus
from voicedesk.tools.brightness import ScreenBrightnessControl
from voicedesk.tools.desktop import definitions_json, desktop_tools
from voicedesk.tools.registry import ClientTool, ToolRegistry


class Battery:
    def read(self) -> BatteryStatus:
        return BatteryStatus(0.82, plugged_in=True)


async def test_the_agent_uses_all_three_tools(agent: LocalAgentServer) -> None:
    sbc = FakeSbc(levels=[70])
    surface = RecordingSurface()
    tools = desktop_tools(
        surface, battery=Battery(), brightness=ScreenBrightnessControl(sbc, platform="win32")
    )
    conv, rec = make(agent.http_url, tools=tools)
    assert await conv.start()
    session = agent.sessions[0]

    conv.send_user_message("what's my battery?")
    assert (await rec.wait_for(AgentResponse, lambda e: "battery" in e.text)).text == (
        "Your battery is at 82 %."
    )
    conv.send_user_message("set brightness to 30 %")
    await rec.wait_for(ToolCallFinished, lambda e: e.tool_name == "changeBrightness")
    conv.send_user_message("flash the screen")
    await rec.wait_for(AgentResponse, lambda e: "flashed" in e.text)  # the result arrived

    finished = {e.tool_name: e for e in rec.of_type(ToolCallFinished)}
    at_agent = {
        name: (
            session.tool_results[e.tool_call_id].result,
            session.tool_results[e.tool_call_id].is_error,
        )
        for name, e in finished.items()
    }
    assert at_agent == {
        "getBatteryLevel": ("0.82", False),
        "changeBrightness": ("0.3", False),
        "flashScreen": ("Flashed the screen.", False),
    }
    assert sbc.calls == [30, 100, 30]  # set to 30 %, pulse to full, restored to 30 %
    assert surface.flashes == [200]

    assert finished["getBatteryLevel"].detail == "82 %, charging"
    assert finished["changeBrightness"].parameters == {"brightness": 0.3}
    assert finished["changeBrightness"].detail == "brightness set to 30 %"
    assert "brightness pulse (restored)" in (finished["flashScreen"].detail or "")
    await conv.end()


async def test_a_ddc_monitor_slower_than_the_timeout_is_an_error_not_a_hang(
    agent: LocalAgentServer,
) -> None:
    sbc = FakeSbc(levels=[70], delay_s=0.5)
    tools = desktop_tools(
        RecordingSurface(), battery=Battery(), brightness=ScreenBrightnessControl(sbc)
    )
    quick = ToolRegistry(
        [ClientTool(replace(tool.definition, timeout_s=0.2), tool.handler) for tool in tools]
    )
    conv, _ = make(agent.http_url, tools=quick)
    assert await conv.start()
    started = time.monotonic()
    outcome = await agent.sessions[0].call_tool("changeBrightness", {"brightness": 0.5})
    assert outcome is not None
    assert outcome.is_error
    assert "did not finish within 0.2 s" in outcome.result
    assert time.monotonic() - started < 0.45
    await conv.end()
    await asyncio.sleep(0.5)  # the abandoned DDC call finishes before the thread-leak check


def test_voicedesk_tools_prints_the_three_definitions() -> None:
    result = run_cli(["tools"])
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    assert [d["name"] for d in listed] == ["getBatteryLevel", "changeBrightness", "flashScreen"]
    assert listed == json.loads(definitions_json())
    for definition in listed:
        assert definition["description"]
        assert definition["parameters"]["type"] == "object"
        assert definition["wait_for_response"] is True
        assert definition["response_timeout_secs"] == 3
    brightness = listed[1]["parameters"]
    assert brightness["required"] == ["brightness"]
    assert brightness["properties"]["brightness"]["type"] == "number"
    assert listed[0]["parameters"]["properties"] == {}


def test_console_demo_shows_each_call_with_this_machines_real_tools() -> None:
    """The issue's check: on this machine (no battery, no backlight) each call is shown
    with its result or its sentence; the flash is the terminal's visual bell."""
    script = "what's my battery?\nset brightness to 30 %\nflash the screen\nbye\n"
    result = run_cli(["console", "--demo", "--text-only"], script)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "[tool] getBatteryLevel() …" in out
    assert re.search(
        r"\[tool\] getBatteryLevel (-> 0\.\d+|-> 1|failed: This computer has no battery, so I "
        r"can't read a battery level\.) .*\[\d+ ms\]",
        out,
    ), out
    assert "[tool] changeBrightness(brightness=0.3) …" in out
    assert re.search(r"\[tool\] changeBrightness (-> |failed: I can't change the brightness)", out)
    assert re.search(r"\[tool\] flashScreen -> Flashed the screen\. \(a terminal visual bell", out)
    assert "\033[?5h" in out
    assert "\033[?5l" in out
    assert "Traceback" not in out + result.stderr
