"""Composition root: the command line, settings, and wiring of the parts.

``voicedesk`` (the window; until it lands, the console), ``voicedesk console``,
``voicedesk localagent --port N``. Options shared by every mode: see ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from voicedesk import __version__
from voicedesk.audio.settings import AudioSettings
from voicedesk.config import (
    SecretRedactor,
    SecretStoreError,
    Settings,
    load_api_key,
    load_settings,
    save_api_key,
    save_settings,
    setup_logging,
)
from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind
from voicedesk.protocol.formats import ALL_FORMATS
from voicedesk.session import Conversation, ConversationOptions
from voicedesk.session.endpoints import DEFAULT_SERVER_URL, EndpointError, normalize_server_url
from voicedesk.tools import ToolRegistry
from voicedesk.tools.desktop import definitions_json, desktop_tools

logger = logging.getLogger(__name__)

DEMO_AGENT_ID = "demo"
AGENT_ID_ENV = "ELEVENLABS_AGENT_ID"
API_KEY_ENV = "ELEVENLABS_API_KEY"


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS: the same options are accepted before and after the command without a
    # sub-parser's defaults overwriting what was given before it.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = common.add_argument_group("agent and connection")
    g.add_argument("--agent-id", help=f"the agent to talk to (or {AGENT_ID_ENV})")
    g.add_argument(
        "--api-key",
        help=f"a private agent's API key (or {API_KEY_ENV}; kept only in the OS keyring)",
    )
    g.add_argument("--signed-url", help="a signed wss:// URL obtained elsewhere")
    g.add_argument(
        "--server-url",
        help=f"API base URL or region (global, us, eu, in); default {DEFAULT_SERVER_URL}",
    )
    g.add_argument("--demo", action="store_true", help="talk to the built-in local demo agent")
    g.add_argument(
        "--var", action="append", metavar="KEY=VALUE", help="a dynamic variable (repeatable)"
    )
    g.add_argument("--user-id", help="your user id, passed to the agent")
    g.add_argument("--first-message", help="override the agent's first message")
    g.add_argument("--language", help="override the agent's language (e.g. en, de)")
    g.add_argument("--voice-id", help="override the agent's voice")
    g.add_argument("--text-only", action="store_true", help="no audio: text in, text out")
    g.add_argument(
        "--remember",
        action="store_true",
        help="save the agent, server and user id as defaults (the API key goes to the OS keyring)",
    )
    a = common.add_argument_group("audio")
    a.add_argument(
        "--input-device", metavar="DEVICE", help="microphone: an index or part of a name"
    )
    a.add_argument("--output-device", metavar="DEVICE", help="speaker: an index or part of a name")
    a.add_argument(
        "--list-devices", action="store_true", help="list microphones and speakers, then exit"
    )
    a.add_argument(
        "--no-aec",
        action="store_true",
        help="turn echo cancellation off (with headphones it is not needed)",
    )
    g.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log file detail (default INFO)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="voicedesk",
        description="Talk with an ElevenLabs voice agent from your desktop.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"voicedesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("console", parents=[common], help="hold a conversation in the terminal")
    sub.add_parser(
        "tools",
        help="print the client tools' definitions (JSON), to set up your agent",
    )
    local = sub.add_parser(
        "localagent", parents=[common], help="run the local demo agent server on its own"
    )
    local.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    local.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks one)")
    format_names = [f.name for f in ALL_FORMATS]
    local.add_argument("--output-format", default="pcm_16000", choices=format_names)
    local.add_argument("--input-format", default="pcm_16000", choices=format_names)
    local.add_argument(
        "--voice", default=VoiceKind.AUTO.value, choices=[v.value for v in VoiceKind]
    )
    local.add_argument(
        "--require-key",
        metavar="KEY",
        help="make the agent private: clients need a signed URL got with this API key",
    )
    return parser


def _opt(args: argparse.Namespace, name: str, default: object = None) -> object:
    return getattr(args, name, default)


def parse_variables(pairs: Sequence[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--var needs KEY=VALUE, got {pair!r}")
        variables[key.strip()] = value
    return variables


@dataclass(slots=True)
class LaunchPlan:
    """What the options and settings resolve to."""

    options: ConversationOptions
    demo: bool
    demo_reason: str | None = None
    audio: AudioSettings = field(default_factory=AudioSettings)


def resolve(args: argparse.Namespace, settings: Settings, env: dict[str, str]) -> LaunchPlan:
    """Options > environment > saved settings. No agent at all -> the local demo."""
    variables = dict(settings.dynamic_variables)
    variables.update(parse_variables(list(_opt(args, "var", []) or [])))  # type: ignore[call-overload]
    agent_id = _opt(args, "agent_id") or env.get(AGENT_ID_ENV) or settings.agent_id
    signed_url = _opt(args, "signed_url")
    api_key = _opt(args, "api_key") or env.get(API_KEY_ENV)
    server_url = _opt(args, "server_url") or settings.server_url or DEFAULT_SERVER_URL
    demo = bool(_opt(args, "demo", False))
    reason = None
    if not demo and not agent_id and not signed_url:
        demo, reason = True, "No agent is configured, so voicedesk talks to its local demo agent."
    if demo:
        agent_id, signed_url, api_key = DEMO_AGENT_ID, None, None
    elif api_key is None and agent_id and not signed_url:
        api_key = load_api_key()
    if isinstance(api_key, str):
        SecretRedactor.register(api_key)
    options = ConversationOptions(
        agent_id=str(agent_id) if agent_id else None,
        api_key=str(api_key) if api_key else None,
        signed_url=str(signed_url) if signed_url else None,
        server_url=str(server_url),
        dynamic_variables=dict(variables),
        user_id=str(_opt(args, "user_id") or settings.user_id or "") or None,
        first_message=_str_or_none(_opt(args, "first_message")),
        language=_str_or_none(_opt(args, "language")),
        voice_id=_str_or_none(_opt(args, "voice_id")),
        text_only=bool(_opt(args, "text_only", False)) or settings.text_only,
    )
    audio = AudioSettings(
        input_device=_str_opt(args, "input_device") or settings.input_device,
        output_device=_str_opt(args, "output_device") or settings.output_device,
        echo_cancellation=settings.echo_cancellation and not _opt(args, "no_aec", False),
    )
    return LaunchPlan(options, demo, reason, audio)


def _str_opt(args: argparse.Namespace, name: str) -> str | None:
    value = _opt(args, name)
    return str(value) if value is not None else None


def _str_or_none(value: object) -> str | None:
    return str(value) if value else None


def remember(args: argparse.Namespace, plan: LaunchPlan, settings: Settings) -> list[str]:
    """Save the choices as defaults; returns sentences saying what happened."""
    said: list[str] = []
    if plan.demo:
        return ["--remember: nothing to save for the demo agent."]
    settings.agent_id = plan.options.agent_id
    settings.server_url = plan.options.server_url
    settings.user_id = plan.options.user_id
    path = save_settings(settings)
    said.append(f"Saved the agent and server as defaults in {path}.")
    if plan.options.api_key and (_opt(args, "api_key") or os.environ.get(API_KEY_ENV)):
        try:
            save_api_key(plan.options.api_key)
            said.append("Saved the API key in the OS keyring.")
        except SecretStoreError as exc:
            said.append(str(exc))
    return said


@contextlib.asynccontextmanager
async def demo_server(config: AgentConfig | None = None) -> AsyncIterator[LocalAgentServer]:
    server = LocalAgentServer(config or AgentConfig(), port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def build_tools() -> ToolRegistry:
    """The client tools this app offers the agent (console: the flash is a visual bell)."""
    return desktop_tools()


async def run_console(plan: LaunchPlan, out: object = None) -> int:
    from voicedesk.audio.engine import AudioEngine
    from voicedesk.console import ConsoleClient

    options = plan.options
    if plan.demo_reason:
        print(plan.demo_reason)
    async with contextlib.AsyncExitStack() as stack:
        if plan.demo:
            server = await stack.enter_async_context(demo_server())
            options.server_url = server.http_url
            print(f"Local demo agent on {server.http_url} (it runs on this computer only).")
        engine = None if options.text_only else AudioEngine(plan.audio)
        if engine is not None:
            # PortAudio takes a moment to start: do it while the conversation connects.
            prepare = asyncio.ensure_future(engine.prepare())
            prepare.add_done_callback(_log_failure)
        conversation = Conversation(options, tools=build_tools(), audio=engine)
        return await ConsoleClient(conversation).run()
    return 1  # pragma: no cover - the context manager does not swallow exceptions


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("audio preparation failed: %s", task.exception())


def print_devices() -> int:
    from voicedesk.audio.devices import describe_devices, list_devices

    try:
        devices = list_devices()
    except Exception as exc:
        print(f"voicedesk: the sound system could not be opened ({exc}).", file=sys.stderr)
        return 1
    print(describe_devices(devices))
    return 0


async def run_localagent(args: argparse.Namespace) -> int:
    config = AgentConfig(
        agent_output_audio_format=str(args.output_format),
        user_input_audio_format=str(args.input_format),
        voice=VoiceKind(args.voice),
        api_key=args.require_key,
    )
    server = LocalAgentServer(config, host=str(args.host), port=int(args.port))
    try:
        await server.start()
    except OSError as exc:
        print(
            f"voicedesk: could not listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    print(f"Local agent listening on {server.http_url}", flush=True)
    print(f"  websocket: {server.ws_url()}", flush=True)
    print(
        f"  connect with: voicedesk console --server-url {server.http_url} --agent-id demo",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
    return 0  # pragma: no cover - only reached by cancellation


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_path = setup_logging(str(_opt(args, "log_level", "INFO")))
    logger.info("voicedesk %s starting: %s", __version__, args.command or "window")
    try:
        if args.command == "tools":
            print(definitions_json())
            return 0
        if args.command == "localagent":
            if args.require_key:
                SecretRedactor.register(str(args.require_key))
            return asyncio.run(run_localagent(args))
        if _opt(args, "list_devices", False):
            return print_devices()
        settings = load_settings()
        try:
            plan = resolve(args, settings, dict(os.environ))
            if not plan.demo:
                normalize_server_url(plan.options.server_url)
        except (ValueError, EndpointError) as exc:
            print(f"voicedesk: {exc}", file=sys.stderr)
            return 2
        if _opt(args, "remember", False):
            for sentence in remember(args, plan, settings):
                print(sentence)
        if args.command is None:
            print(
                "voicedesk: the desktop window is not built yet; starting the console client.",
                file=sys.stderr,
            )
        return asyncio.run(run_console(plan))
    except KeyboardInterrupt:
        return 130
    except Exception:
        logger.exception("voicedesk failed")
        where = f" Details are in {log_path}." if log_path else ""
        print(f"voicedesk: something went wrong and it had to stop.{where}", file=sys.stderr)
        return 1
