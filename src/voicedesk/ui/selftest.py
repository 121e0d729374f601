"""``voicedesk --self-test``: a short scripted conversation with the local demo agent
through the real window, session, audio and tool code; one summary line, exit 0 on
success. Users run it to check their set-up; the bundle smoke test runs it too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from voicedesk.launch import LaunchPlan
from voicedesk.session.transcript import Speaker

if TYPE_CHECKING:
    from voicedesk.ui.shell import WindowShell

STEP_TIMEOUT_S = 20.0


class SelfTestFailed(Exception):
    pass


async def _until(check: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT_S) -> float:
    """Wait for ``check()``; returns the seconds it took. Raises with ``what`` on timeout."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SelfTestFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def run_self_test(shell: WindowShell, *, print_line: Callable[[str], None] = print) -> int:
    window, controller = shell.window, shell.controller
    plan = controller.plan
    controller.set_plan(LaunchPlan(plan.options, demo=True, audio=plan.audio))
    window.show_conversation("Self-test with the local demo agent")
    started = time.monotonic()
    lines = controller.transcript.lines
    step = "start"
    try:
        window.start_button.click()
        connect_s = await _until(lambda: controller.status == "connected", "Connected")
        if window.status_label.text() != "Connected":
            raise SelfTestFailed(f"the status label says {window.status_label.text()!r}")
        step = "greeting"
        await _until(lambda: any(line.speaker is Speaker.AGENT for line in lines), "the greeting")
        audio = "text only"
        if controller.is_voice:
            step = "audio"
            await _until(lambda: controller.is_speaking, "the greeting to be heard", 10.0)
            await _until(lambda: not controller.is_speaking, "the greeting to finish", 60.0)
            engine = controller.launcher.engine
            device = engine.output_device.name if engine and engine.output_device else "?"
            audio = f"voice through {device!r}"
        else:
            notes = [line.text for line in lines if line.speaker is Speaker.NOTICE]
            audio = "text only" + (f" ({notes[-1]})" if len(notes) > 1 else "")
        step = "tool call"
        window.message_input.setPlainText("What's my battery level?")
        window.send_message_button.click()
        if window.message_input.text():
            raise SelfTestFailed("the message box was not cleared after sending")
        await _until(
            lambda: any(
                line.speaker is Speaker.TOOL
                and not line.tentative
                and "getBatteryLevel" in line.text
                for line in lines
            ),
            "the battery tool's answer",
        )
        tool_line = next(line for line in lines if line.speaker is Speaker.TOOL)
        step = "reply"
        await _until(lambda: lines[-1].speaker is Speaker.AGENT, "the agent's reply")
        if controller.is_voice:
            await _until(lambda: not controller.is_speaking, "the reply to finish", 60.0)
        step = "end"
        window.end_button.click()
        await _until(lambda: controller.status == "disconnected", "Disconnected")
        if window.status_label.text() != "Disconnected":
            raise SelfTestFailed(f"the status label says {window.status_label.text()!r}")
    except SelfTestFailed as exc:
        print_line(f"voicedesk self-test FAILED at {step}: {exc}.")
        return 1
    total = time.monotonic() - started
    tool = tool_line.text.split("[")[-1].rstrip("]")
    print_line(
        f"voicedesk self-test passed in {total:.1f} s: connected in {connect_s * 1000:.0f} ms, "
        f"{audio}, getBatteryLevel answered in {tool}, ended cleanly."
    )
    return 0
