"""The real client for the matrix: the console (``ConsoleClient``) on a conversation the
``Launcher`` builds from command-line options, as ``voicedesk console`` does, in this
process (a subprocess per case would cost the matrix a minute of imports); its output
is what a user reads in the terminal. Cases about files and the keyring run
``voicedesk`` as a real subprocess instead (:func:`run_voicedesk`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from tests.conftest import scaled
from tests.faults.matrix import FAKE_API_KEY, FAKE_SIGNATURE, SECRETS_USED, FaultCase
from voicedesk.app import build_parser, build_tools
from voicedesk.config import load_settings
from voicedesk.console import ConsoleClient
from voicedesk.history import list_entries
from voicedesk.launch import Launcher, resolve
from voicedesk.localagent import AgentConfig, LocalAgentServer
from voicedesk.session import Conversation
from voicedesk.tools import ToolRegistry


@dataclass
class ConsoleCall:
    case: FaultCase
    console: ConsoleClient
    conversation: Conversation
    launcher: Launcher
    out: io.StringIO
    run: asyncio.Task[int]
    _typed: IO[str]

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    async def line(self, prefix: str, timeout: float = 10) -> str:
        """The first line printed that starts with ``prefix`` (waiting for it)."""
        async with asyncio.timeout(scaled(timeout)):
            while True:
                for text in self.lines():
                    if text.startswith(prefix):
                        return text
                await asyncio.sleep(0.02)

    async def saw(self, prefix: str, timeout: float = 10) -> str:
        """The line the user sees, recorded as the case's outcome."""
        return self.case.saw(await self.line(prefix, timeout))

    def type(self, text: str) -> None:
        self._typed.write(text + "\n")
        self._typed.flush()

    async def ended(self, timeout: float = 10) -> int:
        """The console's exit code, once the conversation is over."""
        async with asyncio.timeout(scaled(timeout)):
            return await asyncio.shield(self.run)


def _end_input(typed: IO[str]) -> None:
    """End the console's input and wait for its reader thread."""
    with contextlib.suppress(OSError):
        typed.close()
    for thread in threading.enumerate():
        if thread.name == "console-input":
            thread.join(scaled(5))


@contextlib.asynccontextmanager
async def console_call(
    case: FaultCase,
    server_url: str,
    *args: str,
    tools: Callable[[], ToolRegistry] = build_tools,
    wait_connected: bool = True,
    **options: Any,
) -> AsyncIterator[ConsoleCall]:
    """``voicedesk console --server-url URL --agent-id demo ARGS`` in this process;
    ``options`` override the conversation's (keepalive, timeouts). Everything it opened
    is closed on the way out; its output is kept as the case's evidence."""
    argv = ["console", "--server-url", server_url, "--agent-id", "demo", *args]
    plan = resolve(build_parser().parse_args(argv), load_settings(), dict(os.environ))
    plan = replace(plan, options=replace(plan.options, **options))
    launcher = Launcher(plan, tools)
    read_fd, write_fd = os.pipe()
    typed_in = os.fdopen(read_fd, "r", encoding="utf-8")
    typed = os.fdopen(write_fd, "w", encoding="utf-8")
    out = io.StringIO()
    conversation = await launcher.new_conversation()
    console = ConsoleClient(conversation, stdin=typed_in, out=out)
    run = asyncio.ensure_future(console.run())
    call = ConsoleCall(case, console, conversation, launcher, out, run, typed)
    try:
        if wait_connected:
            await call.line("Connected (")
        yield call
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(scaled(5)):
                await conversation.end()
        _end_input(typed)
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(scaled(5)):
                await run
        if not run.done():
            run.cancel()
        await launcher.close()
        typed_in.close()
        case.keep("console.txt", out.getvalue())


@contextlib.asynccontextmanager
async def private_agent() -> AsyncIterator[LocalAgentServer]:
    """A local agent that takes only the matrix's signed URL."""
    async with LocalAgentServer(AgentConfig(api_key=FAKE_API_KEY, ping_interval_s=None)) as agent:
        agent.signatures.add(FAKE_SIGNATURE)
        yield agent
    SECRETS_USED.update(agent.signatures)


def history_records(case: FaultCase) -> list[dict[str, Any]]:
    """The records of the case's one kept conversation, read as ``voicedesk history``
    reads them (every line parsed but a last one cut short)."""
    from voicedesk.config import history_dir

    entries = list_entries(history_dir())
    assert len(entries) == 1, f"{len(entries)} conversations in the history"
    (entry,) = entries
    assert not entry.damaged
    return entry.records


def assert_history_kept(
    case: FaultCase, *texts: str, ended: str | None = None, connected: bool = True
) -> None:
    """The history holds the conversation up to the fault (each of ``texts`` in a
    record) and, when given, how it ended."""
    records = history_records(case)
    kinds = [r.get("type") for r in records]
    assert kinds[0] == "start", kinds
    assert ("connected" in kinds) == connected, kinds
    written = "\n".join(str(r.get("text") or r.get("result") or "") for r in records)
    for text in texts:
        assert text in written, f"{text!r} not in the history: {written!r}"
    if ended is not None:
        assert kinds[-1] == "ended", kinds
        assert records[-1]["message"] == ended, records[-1]


def run_voicedesk(
    case: FaultCase,
    args: list[str],
    *,
    stdin: str = "",
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """``voicedesk ARGS`` as a real process (``prefix``: a command it runs under, such as
    ``unshare``); its output is kept as the case's evidence."""
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(root / "src"), str(root), os.environ.get("PYTHONPATH", "")])
    started = time.monotonic()
    result = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "voicedesk", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        check=False,
    )
    case.keep("stdout.txt", result.stdout)
    case.keep("stderr.txt", result.stderr)
    case.keep("took.txt", f"{time.monotonic() - started:.2f} s\n")
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result
