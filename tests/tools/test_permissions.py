"""Tool permissions: Allow, Ask or Never per agent and tool, what the agent is told when
a tool does not run, and ``voicedesk permissions``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import scaled
from tests.console.test_console import run_cli
from voicedesk import config
from voicedesk.config import Settings
from voicedesk.launch import Launcher, resolve
from voicedesk.protocol.events import ClientToolCall
from voicedesk.session import ToolCallFinished
from voicedesk.tools import ClientTool, ToolDefinition, ToolRegistry
from voicedesk.tools import permissions as p


def test_parse_set_and_read_permissions() -> None:
    settings = Settings()
    assert p.permission_for(settings.tool_permissions, "a", "t") is p.Permission.ALLOW
    p.set_permission(settings, "a", "t", p.parse_permission("Never"))
    assert settings.tool_permissions == {"a": {"t": "never"}}
    assert p.permission_for(settings.tool_permissions, "a", "t") is p.Permission.NEVER
    assert p.permission_for(settings.tool_permissions, "b", "t") is p.Permission.ALLOW
    p.set_permission(settings, "a", "t", p.parse_permission("reset"))
    assert settings.tool_permissions == {}
    with pytest.raises(p.ToolPermissionError, match="'sometimes' is not a permission"):
        p.parse_permission("sometimes")
    with pytest.raises(p.ToolPermissionError, match="Give the agent ID"):
        p.set_permission(settings, " ", "t", p.Permission.ASK)
    # A hand-edited settings file voicedesk cannot read is the default, not a crash.
    assert p.permission_for({"a": {"t": "perhaps"}}, "a", "t") is p.Permission.ALLOW
    assert p.permission_for({"a": "never"}, "a", "t") is p.Permission.ALLOW  # type: ignore[dict-item]


def plan_for_demo() -> Any:
    import argparse

    return resolve(argparse.Namespace(demo=True, text_only=True), Settings(), {})


def registry(ran: list[str]) -> ToolRegistry:
    def battery(params: Any) -> str:
        ran.append("getBatteryLevel")
        return "85 %"

    definition = ToolDefinition("getBatteryLevel", "battery", timeout_s=1.0)
    return ToolRegistry([ClientTool(definition, battery)])


async def battery_call(asker: Any = None, permission: str | None = None) -> tuple[Any, list[str]]:
    """Ask the demo agent for the battery; what the agent got back, and what ran."""
    if permission is not None:
        settings = config.load_settings()
        p.set_permission(settings, "demo", "getBatteryLevel", p.Permission(permission))
        config.save_settings(settings)
    ran: list[str] = []
    launcher = Launcher(plan_for_demo(), lambda: registry(ran))
    try:
        conversation = await launcher.new_conversation(tool_asker=asker)
        finished = asyncio.Event()
        conversation.add_listener(
            lambda e: finished.set() if isinstance(e, ToolCallFinished) else None
        )
        assert await conversation.start()
        conversation.send_user_message("what's my battery?")
        await asyncio.wait_for(finished.wait(), scaled(5))
        server = launcher.demo_server
        assert server is not None
        session = server.sessions[0]
        await session.wait_for(lambda s: bool(s.tool_results), timeout=scaled(5))
        (result,) = session.tool_results.values()
        await conversation.end()
        return result, ran
    finally:
        await launcher.close()


async def test_allow_is_the_default_and_runs_the_tool() -> None:
    result, ran = await battery_call()
    assert ran == ["getBatteryLevel"]
    assert (result.result, result.is_error) == ("85 %", False)


async def test_never_refuses_at_once_with_a_sentence_the_agent_can_repeat() -> None:
    result, ran = await battery_call(permission="never")
    assert ran == []
    assert result.is_error is True
    assert result.result == (
        "Client tool execution failed: The user does not allow getBatteryLevel to run on "
        "this computer."
    )


async def test_ask_runs_once_denies_or_allows_from_now_on() -> None:
    asked: list[tuple[str, float]] = []

    def answering(choice: str) -> Any:
        async def ask(call: ClientToolCall, seconds: float) -> str:
            asked.append((call.tool_name, seconds))
            return choice

        return ask

    result, ran = await battery_call(answering("deny"), permission="ask")
    assert ran == []
    assert result.result.endswith("The user said no to running getBatteryLevel this time.")
    assert asked == [("getBatteryLevel", 1.0)], "asked with the tool's own timeout"

    result, ran = await battery_call(answering("once"))
    assert ran == ["getBatteryLevel"]
    assert p.permission_for(config.load_settings().tool_permissions, "demo", "getBatteryLevel") is (
        p.Permission.ASK
    )

    result, ran = await battery_call(answering("always"))
    assert ran == ["getBatteryLevel"]
    saved = config.load_settings().tool_permissions
    assert p.permission_for(saved, "demo", "getBatteryLevel") is p.Permission.ALLOW
    asked.clear()
    result, ran = await battery_call(answering("deny"))
    assert asked == [], "allowed for good: not asked again"
    assert ran == ["getBatteryLevel"]


async def test_no_answer_within_the_tools_timeout_is_a_refusal() -> None:
    async def silent(call: ClientToolCall, seconds: float) -> str:
        await asyncio.Event().wait()
        return "once"

    result, ran = await battery_call(silent, permission="ask")
    assert ran == []
    assert result.result.endswith("The user did not allow getBatteryLevel in time.")


def test_the_permissions_command() -> None:
    listed = run_cli(["permissions", "list"])
    assert "getBatteryLevel, changeBrightness, flashScreen: allow" in listed.stdout
    done = run_cli(["permissions", "set", "agent_1", "flashScreen", "never"])
    assert done.returncode == 0
    assert done.stdout.strip() == "flashScreen for agent_1: never."
    assert "agent_1  flashScreen  never" in run_cli(["permissions", "list"]).stdout
    bad = run_cli(["permissions", "set", "agent_1", "flashScreen", "sometimes"])
    assert bad.returncode == 2
    assert "'sometimes' is not a permission: use allow, ask, never or reset." in bad.stderr
    other = run_cli(["permissions", "set", "agent_1", "rm_rf", "ask"])
    assert "(rm_rf is not one of voicedesk's tools)" in other.stdout
    run_cli(["permissions", "set", "agent_1", "flashScreen", "reset"])
    assert "flashScreen  never" not in run_cli(["permissions", "list"]).stdout


def test_the_console_asks_and_always_is_remembered() -> None:
    run_cli(["permissions", "set", "demo", "getBatteryLevel", "ask"])
    result = run_cli(["console", "--demo", "--text-only"], "what's my battery?\na\nbye\n")
    assert result.returncode == 0, result.stderr
    assert (
        "[allow?] The agent wants to run getBatteryLevel() on this computer. Allow it? "
        "[y = this time, a = always, n = no] (3 s)" in result.stdout
    )
    assert "[tool] getBatteryLevel" in result.stdout
    saved = config.load_settings().tool_permissions
    assert p.permission_for(saved, "demo", "getBatteryLevel") is p.Permission.ALLOW
