"""Composition root: the command line, settings, and wiring of the parts.

``voicedesk`` (the window), ``voicedesk --self-test``, ``voicedesk console``,
``voicedesk localagent --port N``. Options shared by every mode: see ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from voicedesk import __version__
from voicedesk.config import SecretRedactor, Settings, load_settings, setup_logging
from voicedesk.handsfree import MIN_TAKES
from voicedesk.launch import (
    AGENT_ID_ENV,
    API_KEY_ENV,
    Launcher,
    LaunchPlan,
    has_display,
    remember,
    resolve,
)
from voicedesk.protocol.formats import ALL_FORMATS
from voicedesk.session.endpoints import (
    DEFAULT_SERVER_URL,
    REGIONS,
    TRANSPORTS,
    EndpointError,
    normalize_server_url,
)
from voicedesk.tools import ToolRegistry
from voicedesk.tools.desktop import definitions_json, desktop_tools

if TYPE_CHECKING:
    from voicedesk.protocol.events import ClientToolCall, McpToolCall

logger = logging.getLogger(__name__)

# The local agent's voices (localagent.VoiceKind), spelled out so that building the
# parser does not import the agent (and numpy) on the window's start-up path.
VOICES = ("auto", "espeak", "tones", "sine")


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
        help=f"API base URL or region ({', '.join(REGIONS)}); default {DEFAULT_SERVER_URL}",
    )
    g.add_argument(
        "--environment", help="the agent's deployment environment to talk to (e.g. staging)"
    )
    g.add_argument("--branch-id", help="the agent's branch to talk to")
    g.add_argument("--demo", action="store_true", help="talk to the built-in local demo agent")
    g.add_argument(
        "--var", action="append", metavar="KEY=VALUE", help="a dynamic variable (repeatable)"
    )
    g.add_argument("--user-id", help="your user id, passed to the agent")
    o = common.add_argument_group(
        "per-conversation overrides (the agent must allow each one in its security settings)"
    )
    o.add_argument("--prompt", help="override the agent's system prompt")
    o.add_argument("--llm", help="override the agent's language model (e.g. gemini-2.0-flash)")
    o.add_argument("--first-message", help="override the agent's first message")
    o.add_argument("--language", help="override the agent's language (e.g. en, de)")
    o.add_argument("--voice-id", help="override the agent's voice")
    o.add_argument("--tts-speed", metavar="SPEED", help="speaking speed, 0.7 to 5 (1 is normal)")
    o.add_argument("--tts-stability", metavar="0..1", help="voice stability, 0 to 1")
    o.add_argument("--tts-similarity", metavar="0..1", help="voice similarity boost, 0 to 1")
    o.add_argument(
        "--asr-keyword",
        action="append",
        metavar="WORD",
        help="a word speech recognition should expect (repeatable)",
    )
    o.add_argument(
        "--client-events",
        metavar="TYPE,TYPE",
        help="more events the agent should send, comma separated (e.g. "
        "agent_tool_request,agent_tool_response); the ones every agent sends stay on",
    )
    o.add_argument(
        "--llm-extra-body",
        metavar="JSON",
        help="a JSON object passed as is to the agent's custom LLM",
    )
    g.add_argument("--text-only", action="store_true", help="no audio: text in, text out")
    g.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="how the voice travels: websocket (default) or webrtc (LiveKit, as the "
        "official client; Opus over UDP)",
    )
    g.add_argument(
        "--livekit-url",
        metavar="URL",
        help="with --transport webrtc: a LiveKit server (wss://) instead of the region's",
    )
    g.add_argument(
        "--reconnect-tries",
        metavar="N",
        help="after the network drops a conversation, try N times to continue it (1 s, 2 s, "
        "4 s, ... apart; 0: ask instead; default 5, also in settings.json)",
    )
    g.add_argument(
        "--no-history",
        action="store_true",
        help="do not write this run's conversations to the history (also in Settings)",
    )
    g.add_argument(
        "--show-reasoning",
        action="store_true",
        help="show the agent's reasoning in the transcript when it sends it",
    )
    g.add_argument(
        "--remember",
        action="store_true",
        help="save the agent, server, user id, environment and branch as defaults (the API key "
        "goes to the OS keyring)",
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
    h = common.add_argument_group("hands-free and push-to-talk")
    h.add_argument(
        "--wake-word",
        nargs="?",
        const="",
        metavar="PATH_OR_NAME",
        help='listen for a hotword and start a conversation each time it is heard ("Hey '
        "Eleven\" unless a trained hotword's name or a reference file is given); nothing "
        "leaves the computer while it only listens",
    )
    h.add_argument(
        "--push-to-talk",
        action="store_true",
        help="the microphone sends silence unless you hold the talk key (window: Space; "
        "console: Ctrl+T or /talk toggles it)",
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
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this computer's set-up: a short conversation with the local demo agent "
        "through the window (offscreen without a display); exit 0 when it works",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("console", parents=[common], help="hold a conversation in the terminal")
    sub.add_parser(
        "tools",
        help="print the client tools' definitions (JSON), to set up your agent",
    )
    hotword = sub.add_parser(
        "hotword", help="make your own hotword for hands-free (--wake-word) and test it"
    )
    actions = hotword.add_subparsers(dest="hotword_command", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help=f"build a hotword from {MIN_TAKES} or more recordings of it (WAV files in a folder)",
    )
    train.add_argument(
        "--input-dir", required=True, metavar="DIR", help="the folder of WAV recordings"
    )
    train.add_argument("--name", required=True, help="the hotword's name, e.g. hey_computer")
    train.add_argument(
        "--output",
        metavar="FILE",
        help="where to write the reference file (default: voicedesk's hotword folder)",
    )
    test = actions.add_parser(
        "test", parents=[common], help="listen with the microphone and print the hotword's scores"
    )
    test.add_argument(
        "--seconds", type=float, metavar="S", help="stop after this long (default: Ctrl+C)"
    )
    test.add_argument(
        "--threshold", type=float, metavar="0..1", help="the confidence that counts as heard"
    )
    actions.add_parser("list", help="list the hotwords voicedesk knows")
    history = sub.add_parser(
        "history", help="past conversations: list, show, export or delete them"
    )
    kept = history.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    listing = kept.add_parser("list", help="every kept conversation, newest first")
    listing.add_argument("--search", metavar="TEXT", help="only those that contain TEXT")
    kept.add_parser("show", help="one conversation, as text").add_argument("id")
    export = kept.add_parser("export", help="one conversation as Markdown or JSON")
    export.add_argument("id")
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("--output", metavar="FILE", help="write it there (default: print it)")
    kept.add_parser("delete", help="delete one conversation").add_argument("id")
    perms = sub.add_parser(
        "permissions", help="which client tools each agent may run: allow, ask or never"
    )
    perm_actions = perms.add_subparsers(dest="permissions_command", metavar="ACTION", required=True)
    perm_actions.add_parser("list", help="the permissions set, and the default")
    setting = perm_actions.add_parser("set", help="set one tool's permission for one agent")
    setting.add_argument("agent", help="the agent ID (demo: the local demo agent)")
    setting.add_argument("tool", help="the client tool, e.g. getBatteryLevel")
    setting.add_argument("permission", help="allow, ask, never, or reset (back to allow)")
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
        "--voice",
        default="auto",
        choices=VOICES,
        help="espeak-ng speech, beeps, or a steady 1 kHz tone (default auto: espeak if installed)",
    )
    local.add_argument(
        "--require-key",
        metavar="KEY",
        help="make the agent private: clients need a signed URL got with this API key",
    )
    return parser


def _opt(args: argparse.Namespace, name: str, default: object = None) -> object:
    return getattr(args, name, default)


def build_tools() -> ToolRegistry:
    """The client tools this app offers the agent (console: the flash is a visual bell)."""
    return desktop_tools()


async def run_console(plan: LaunchPlan) -> int:
    from voicedesk.console import TALK_KEY, ConsoleClient, Continuer
    from voicedesk.handsfree import HandsFreeUnavailable, PushToTalk, launcher_loop
    from voicedesk.session import Conversation
    from voicedesk.session.backoff import backoff_delays

    if plan.demo_reason:
        print(plan.demo_reason)
    launcher = Launcher(plan, build_tools)
    console: ConsoleClient | None = None
    # A terminal sees no key-up: its talk key toggles.
    talk = PushToTalk(launcher, key=TALK_KEY, hold=False) if plan.push_to_talk else None

    async def approve(call: McpToolCall) -> bool:
        # MCP tools that need approval ask on the terminal.
        return console is not None and await console.ask_approval(call)

    async def ask_tool(call: ClientToolCall, seconds: float) -> str:
        # Client tools set to Ask, likewise.
        return "deny" if console is None else await console.ask_tool(call, seconds)

    try:
        if plan.hands_free:
            console = ConsoleClient(show_reasoning=plan.show_reasoning, talk=talk)
            try:
                loop = launcher_loop(
                    launcher, approver=approve, tool_asker=ask_tool, on_event=console.on_loop_event
                )
            except HandsFreeUnavailable as exc:
                print(f"voicedesk: {exc}", file=sys.stderr)
                return 1
            if plan.demo:
                await launcher.start_demo_agent()
                print(f"Local demo agent on {launcher.demo_url} (it runs on this computer only).")
            return await console.run_hands_free(loop)
        conversation = await launcher.new_conversation(approver=approve, tool_asker=ask_tool)
        if plan.demo:
            print(f"Local demo agent on {launcher.demo_url} (it runs on this computer only).")
        console = ConsoleClient(conversation, show_reasoning=plan.show_reasoning, talk=talk)

        async def follow() -> Conversation:
            return await launcher.new_conversation(
                approver=approve, tool_asker=ask_tool, continuing=True
            )

        def retry_delays() -> Iterable[float]:
            return backoff_delays(tries=plan.reconnect_tries)

        retry = retry_delays if plan.reconnect_tries else None
        return await console.run(Continuer(lambda: launcher.can_continue, follow, retry))
    finally:
        await launcher.close()


def run_window(
    args: argparse.Namespace, plan: LaunchPlan, settings: Settings, *, self_test: bool
) -> int:
    """The desktop window (PySide6 is imported only on this path)."""
    try:
        from voicedesk.ui.shell import run_window as run
    except ImportError as exc:
        print(
            f"voicedesk: the window cannot open ({exc}). Run `voicedesk console` for the "
            "terminal client, or reinstall voicedesk.",
            file=sys.stderr,
        )
        return 1
    return run(args, plan, settings, self_test=self_test)


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
    from voicedesk.localagent import AgentConfig, LocalAgentServer, VoiceKind

    config = AgentConfig(
        agent_output_audio_format=str(args.output_format),
        user_input_audio_format=str(args.input_format),
        voice=VoiceKind(args.voice),
        api_key=args.require_key,
        record=False,  # a long-running server: no record of every call's audio
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


def run_hotword(args: argparse.Namespace) -> int:
    """``voicedesk hotword train|test|list``."""
    from voicedesk import handsfree

    if args.hotword_command == "list":
        for line in handsfree.describe_hotwords():
            print(line)
        return 0
    if args.hotword_command == "train":
        try:
            path = handsfree.train_hotword(
                Path(args.input_dir),
                str(args.name),
                Path(args.output) if args.output else None,
                on_progress=print,
            )
        except handsfree.HotwordTrainingError as exc:
            print(f"voicedesk: {exc}", file=sys.stderr)
            return 1
        print(
            f"Saved the hotword in {path}. Use it with: voicedesk console --wake-word "
            f"{path.stem if args.output is None else path}"
        )
        return 0
    try:
        plan = resolve(args, load_settings(), dict(os.environ))
    except ValueError as exc:
        print(f"voicedesk: {exc}", file=sys.stderr)
        return 2
    return handsfree.print_scores(
        plan.wake_word,
        input_device=plan.audio.input_device,
        seconds=args.seconds,
        threshold=args.threshold,
    )


def run_permissions(args: argparse.Namespace) -> int:
    """``voicedesk permissions list|set AGENT TOOL allow|ask|never|reset``."""
    from voicedesk.config import save_settings
    from voicedesk.tools import permissions

    settings = load_settings()
    tools = [t.definition.name for t in build_tools()]
    if args.permissions_command == "list":
        for line in permissions.describe(settings.tool_permissions, tools):
            print(line)
        return 0
    try:
        value = permissions.parse_permission(args.permission)
        permissions.set_permission(settings, args.agent, args.tool, value)
        save_settings(settings)
    except permissions.ToolPermissionError as exc:
        print(f"voicedesk: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"voicedesk: the settings could not be saved ({exc.strerror}).", file=sys.stderr)
        return 1
    shown = (value or permissions.DEFAULT_PERMISSION).value
    unknown = "" if args.tool in tools else f" ({args.tool} is not one of voicedesk's tools)"
    print(f"{args.tool} for {args.agent}: {shown}.{unknown}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    """``voicedesk history list|show|export|delete``: exit 1 with a sentence on failure."""
    from voicedesk import history
    from voicedesk.config import history_dir

    directory = history_dir()
    try:
        if args.history_command == "list":
            entries = history.list_entries(directory, args.search)
            if not entries:
                where = " with that text" if args.search else ""
                print(f"No conversation{where} in the history ({directory}).")
            for entry in entries:
                print(history.summary_line(entry))
            return 0
        if args.history_command == "delete":
            entry = history.delete_entry(directory, args.id)
            print(f"Deleted the conversation {entry.id}.")
            return 0
        entry = history.find_entry(directory, args.id)
        if args.history_command == "show":
            print(history.to_markdown(entry), end="")
            return 0
        text = history.to_json(entry) if args.format == "json" else history.to_markdown(entry)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"Wrote {args.output}.")
        else:
            print(text, end="")
        return 0
    except history.HistoryError as exc:
        print(f"voicedesk: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"voicedesk: {args.output} could not be written ({exc.strerror}).", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_path = setup_logging(str(_opt(args, "log_level", "INFO")))
    logger.info("voicedesk %s starting: %s", __version__, args.command or "window")
    try:
        if args.command == "tools":
            print(definitions_json())
            return 0
        if args.command == "hotword":
            return run_hotword(args)
        if args.command == "history":
            return run_history(args)
        if args.command == "permissions":
            return run_permissions(args)
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
        self_test = bool(_opt(args, "self_test"))
        if args.command is None and (self_test or has_display(os.environ)):
            return run_window(args, plan, settings, self_test=self_test)
        if args.command is None:
            print(
                "voicedesk: no display here (no DISPLAY or WAYLAND_DISPLAY), so the "
                "conversation runs in this terminal.",
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
