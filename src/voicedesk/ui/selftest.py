"""``voicedesk --self-test``: a short scripted conversation with the local demo agent
through the real window, session, audio and tool code, then the hotword detector (its
model loads and scores a window); one summary line, exit 0 on success. Users run it to
check their set-up; the bundle smoke test runs it too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from voicedesk.launch import LaunchPlan
from voicedesk.protocol.errors import DisconnectDetails
from voicedesk.session.auth import AuthError, fetch_signed_url
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
    endings: list[DisconnectDetails] = []
    controller.ended.connect(endings.append)

    def check_not_ended() -> None:
        if endings:
            raise SelfTestFailed(endings[-1].message.rstrip("."))

    step = "start"
    try:
        window.start_button.click()
        connect_s = await _until(
            lambda: controller.status == "connected" or bool(endings), "Connected"
        )
        check_not_ended()
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
            echo = engine.echo_canceller_name if engine else "?"
            audio = f"voice through {device!r} (echo cancellation: {echo})"
        else:
            notes = [line.text for line in lines if line.speaker is Speaker.NOTICE]
            audio = "text only" + (f" ({notes[-1]})" if len(notes) > 1 else "")
        check_not_ended()
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
        check_not_ended()
        step = "end"
        window.end_button.click()
        await _until(lambda: controller.status == "disconnected", "Disconnected")
        if window.status_label.text() != "Disconnected":
            raise SelfTestFailed(f"the status label says {window.status_label.text()!r}")
        if not endings or endings[-1].is_error:
            raise SelfTestFailed("the conversation did not end cleanly")
        # The private-agent path: a signed URL through the elevenlabs SDK (and httpx),
        # asked of the local agent, which answers as the REST API does.
        step = "signed URL"
        server_url = controller.launcher.demo_url
        if server_url is None:
            raise SelfTestFailed("the local agent is not running")
        signed = await fetch_signed_url(server_url, "demo", "sk_self_test_key", 10.0)
        if "conversation_signature=" not in signed:
            raise SelfTestFailed("the signed URL has no signature")
        # Hands-free: the detector's model and the built-in hotword load, and score.
        step = "hotword"
        hotword = await _check_hotword()
    except AuthError as exc:
        print_line(f"voicedesk self-test FAILED at {step}: {exc}")
        return 1
    except SelfTestFailed as exc:
        print_line(f"voicedesk self-test FAILED at {step}: {exc}.")
        return 1
    total = time.monotonic() - started
    tool = tool_line.text.split("[")[-1].rstrip("]")
    print_line(
        f"voicedesk self-test passed in {total:.1f} s: connected in {connect_s * 1000:.0f} ms, "
        f"{audio}, getBatteryLevel answered in {tool}, ended cleanly, signed URL obtained, "
        f"{hotword}."
    )
    return 0


async def _check_hotword() -> str:
    """The hotword model loads and scores a window (in a worker thread: ~0.2 s)."""
    try:
        from voicedesk.audio import wakeword
    except ImportError as exc:  # onnxruntime missing from the install or the bundle
        raise SelfTestFailed(f"the hotword detector cannot load ({exc})") from None
    try:
        check = await asyncio.to_thread(wakeword.self_check)
    except (wakeword.HotwordModelError, wakeword.HotwordError) as exc:
        raise SelfTestFailed(str(exc).rstrip(".")) from None
    if not 0.0 <= check.silence_confidence <= 1.0:  # NaN too
        raise SelfTestFailed(
            f"the hotword model scored a window {check.silence_confidence}: it is not working"
        )
    return (
        f"hotword model loaded in {check.load_ms:.0f} ms and scored a window in "
        f"{check.score_ms:.0f} ms"
    )
