"""What to talk to and with what: options resolved from the command line, the
environment and the saved settings, and a :class:`Launcher` that builds each
conversation (the local demo agent when asked, the audio engine, the client tools).

Shared by the window and the console; no Qt here. Heavy parts (the local agent and
numpy, the audio engine with soxr and WebRTC) are imported when first needed, so a
front end can show itself first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from voicedesk.audio.settings import AudioSettings
from voicedesk.config import (
    SecretRedactor,
    SecretStoreError,
    Settings,
    history_dir,
    load_api_key,
    settings_path,
)
from voicedesk.config import save_api_key as _save_api_key
from voicedesk.config import save_settings as _save_settings
from voicedesk.history import Recollection
from voicedesk.protocol.catalog import CLIENT_EVENT_TYPES
from voicedesk.protocol.events import ClientToolCall
from voicedesk.session import Approver, Conversation, ConversationOptions
from voicedesk.session.conversation import ToolGate
from voicedesk.session.endpoints import (
    DEFAULT_SERVER_URL,
    TRANSPORTS,
    EndpointError,
    livekit_url,
)
from voicedesk.tools import ToolRegistry

if TYPE_CHECKING:
    from voicedesk.audio.engine import AudioEngine, LevelListener
    from voicedesk.localagent import AgentConfig, LocalAgentServer

logger = logging.getLogger(__name__)

DEMO_AGENT_ID = "demo"
#: Asks the user whether a client tool set to Ask may run, given the seconds it has:
#: "once", "always" (Allow from now on) or "deny".
ToolAsker = Callable[[ClientToolCall, float], Awaitable[str]]
AGENT_ID_ENV = "ELEVENLABS_AGENT_ID"
API_KEY_ENV = "ELEVENLABS_API_KEY"
NO_AGENT_SENTENCE = "No agent is configured, so voicedesk talks to its local demo agent."
DEFAULT_TALK_KEY = "Space"


def has_display(env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Can a window be shown? Windows and macOS always; elsewhere an X or Wayland
    display, or a Qt platform chosen explicitly (``QT_QPA_PLATFORM=offscreen``)."""
    if platform.startswith("win") or platform == "darwin":
        return True
    return any(env.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


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


#: The contract's bounds of the TTS overrides (``TTSConversationalConfigOverride``):
#: option name -> (lowest, highest, what it is).
TTS_BOUNDS: dict[str, tuple[float, float, str]] = {
    "--tts-speed": (0.7, 5.0, "the agent's speaking speed (1.0 is normal)"),
    "--tts-stability": (0.0, 1.0, "the voice's stability"),
    "--tts-similarity": (0.0, 1.0, "the voice's similarity boost"),
}


def parse_bounded(option: str, value: object) -> float | None:
    """A TTS override within the contract's bounds (:data:`TTS_BOUNDS`); ``None`` when
    not given. Raises ``ValueError`` with a sentence naming the option and its range."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    low, high, what = TTS_BOUNDS[option]
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not (low <= number <= high):  # NaN fails too
        raise ValueError(f"{option} is {what}: a number from {low:g} to {high:g}, not {value!r}.")
    return number


def parse_client_events(value: object) -> tuple[str, ...] | None:
    """``--client-events a,b,c``: event types the agent should send, each one of the
    contract's (:data:`~voicedesk.protocol.catalog.CLIENT_EVENT_TYPES`)."""
    if value is None:
        return None
    names = [name.strip() for name in str(value).split(",") if name.strip()]
    if not names:
        raise ValueError(
            "--client-events needs event types separated by commas, e.g. "
            "audio,agent_response,agent_tool_response."
        )
    unknown = [name for name in names if name not in CLIENT_EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"--client-events: {', '.join(repr(n) for n in unknown)} "
            f"{'is not an event' if len(unknown) == 1 else 'are not events'} an agent can be "
            f"asked to send. Choose from: {', '.join(CLIENT_EVENT_TYPES)}."
        )
    return tuple(dict.fromkeys(names))


def parse_extra_body(value: object) -> dict[str, Any] | None:
    """``--llm-extra-body JSON``: a JSON object passed to a custom LLM as is."""
    if value is None:
        return None
    try:
        body = json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"--llm-extra-body must be a JSON object, like '{{\"temperature\": 0.2}}'; "
            f"it is not valid JSON ({exc.msg} at character {exc.pos})."
        ) from None
    if not isinstance(body, dict):
        kinds = {list: "a list", str: "a string", bool: "true or false", int: "a number"}
        kind = "null" if body is None else kinds.get(type(body), "a number")
        raise ValueError(
            f"--llm-extra-body must be a JSON object (in braces, like '{{\"temperature\": 0.2}}'), "
            f"not {kind}."
        )
    return body


def parse_deployment(option: str, value: object) -> str | None:
    """``--environment`` / ``--branch-id``: one word (it goes into the URL)."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if any(c.isspace() for c in text):
        raise ValueError(f"{option} is a single name without spaces, not {text!r}.")
    return text


def parse_keywords(values: object) -> tuple[str, ...] | None:
    """``--asr-keyword WORD`` (repeatable): words the speech recognition should expect."""
    if not isinstance(values, list | tuple) or not values:
        return None
    words = [str(v).strip() for v in values if str(v).strip()]
    return tuple(dict.fromkeys(words)) or None


@dataclass(slots=True)
class LaunchPlan:
    """What the options and settings resolve to.

    ``demo_reason`` is set when the demo was chosen because no agent is configured
    (the window then offers the first-run choice instead of connecting at once).
    """

    options: ConversationOptions
    demo: bool
    demo_reason: str | None = None
    audio: AudioSettings = field(default_factory=AudioSettings)
    show_reasoning: bool = False
    #: ``--wake-word`` was given: listen for the hotword instead of talking at once
    #: (the window's Hands-free switch, saved in the settings, turns it on there too).
    hands_free: bool = False
    #: The hotword: a trained hotword's name or a reference file; ``None``: the default.
    wake_word: str | None = None
    push_to_talk: bool = False
    talk_key: str = DEFAULT_TALK_KEY
    #: Write each conversation to the history (``--no-history`` or the setting: not).
    history: bool = True
    history_days: int = 0
    #: After a drop by the network, this many automatic tries to continue (0: none,
    #: the user is offered Continue instead).
    reconnect_tries: int = 0
    #: The window's theme: "system", "light" or "dark".
    theme: str = "system"


def resolve(
    args: argparse.Namespace,
    settings: Settings,
    env: Mapping[str, str],
    *,
    force_demo: bool = False,
) -> LaunchPlan:
    """Options > environment > saved settings. No agent at all -> the local demo.

    Raises ``ValueError`` with a sentence for an option that cannot be used."""
    variables = dict(settings.dynamic_variables)
    variables.update(parse_variables(list(_opt(args, "var", []) or [])))  # type: ignore[call-overload]
    agent_id = _opt(args, "agent_id") or env.get(AGENT_ID_ENV) or settings.agent_id
    signed_url = _opt(args, "signed_url")
    api_key = _opt(args, "api_key") or env.get(API_KEY_ENV)
    server_url = _opt(args, "server_url") or settings.server_url or DEFAULT_SERVER_URL
    demo = force_demo or bool(_opt(args, "demo", False))
    reason = None
    if not demo and not agent_id and not signed_url:
        demo, reason = True, NO_AGENT_SENTENCE
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
        environment=parse_deployment(
            "--environment", _opt(args, "environment") or settings.environment
        ),
        branch_id=parse_deployment("--branch-id", _opt(args, "branch_id") or settings.branch_id),
        prompt=_str_or_none(_opt(args, "prompt")),
        llm=_str_or_none(_opt(args, "llm")),
        first_message=_str_or_none(_opt(args, "first_message")),
        language=_str_or_none(_opt(args, "language")),
        voice_id=_str_or_none(_opt(args, "voice_id")),
        tts_speed=parse_bounded("--tts-speed", _opt(args, "tts_speed")),
        tts_stability=parse_bounded("--tts-stability", _opt(args, "tts_stability")),
        tts_similarity_boost=parse_bounded("--tts-similarity", _opt(args, "tts_similarity")),
        asr_keywords=parse_keywords(_opt(args, "asr_keyword")),
        client_events=parse_client_events(_opt(args, "client_events")),
        custom_llm_extra_body=parse_extra_body(_opt(args, "llm_extra_body")),
        text_only=bool(_opt(args, "text_only", False)) or settings.text_only,
        transport=parse_transport(_opt(args, "transport") or settings.transport),
        livekit_url=parse_livekit_url(_opt(args, "livekit_url") or settings.livekit_url),
    )
    audio = AudioSettings(
        input_device=_str_opt(args, "input_device") or settings.input_device,
        output_device=_str_opt(args, "output_device") or settings.output_device,
        echo_cancellation=settings.echo_cancellation and not _opt(args, "no_aec", False),
    )
    show_reasoning = bool(_opt(args, "show_reasoning", False)) or settings.show_reasoning
    wake_option = _opt(args, "wake_word")
    wake_word = parse_wake_word(wake_option) or parse_wake_word(settings.wake_word)
    if wake_option is not None and options.text_only:
        raise ValueError(
            "--wake-word listens with the microphone, so it cannot go with --text-only."
        )
    return LaunchPlan(
        options,
        demo,
        reason,
        audio,
        show_reasoning,
        hands_free=wake_option is not None,
        wake_word=wake_word,
        push_to_talk=bool(_opt(args, "push_to_talk", False)) or settings.push_to_talk,
        talk_key=settings.talk_key.strip() or DEFAULT_TALK_KEY,
        history=settings.history and not _opt(args, "no_history", False),
        history_days=max(0, int(settings.history_days or 0)),
        reconnect_tries=parse_tries(_opt(args, "reconnect_tries"), settings.reconnect_tries),
        theme=settings.theme,
    )


def parse_tries(value: object, default: int) -> int:
    """``--reconnect-tries N``: 0 to 10 (the setting when not given)."""
    if value is None:
        return max(0, min(MAX_RECONNECT_TRIES, int(default or 0)))
    try:
        tries = int(str(value))
    except ValueError:
        tries = -1
    if not 0 <= tries <= MAX_RECONNECT_TRIES:
        raise ValueError(
            f"--reconnect-tries needs a whole number from 0 to {MAX_RECONNECT_TRIES}, "
            f"not {value!r}."
        )
    return tries


#: At most this many automatic tries after a drop (1 s, 2 s, 4 s, ... capped at 30 s).
MAX_RECONNECT_TRIES = 10


async def reconnect(
    follow: Callable[[], Awaitable[Conversation]],
    delays: Iterable[float],
    *,
    on_wait: Callable[[int, float], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Conversation | None:
    """After a drop: wait the next delay, start a conversation that continues the
    dropped one (``follow``), and try again after each failure that may pass by itself
    (the network, a timeout, the service busy). The connected conversation, or
    ``None`` when the tries are used up or a failure will not pass (a refused key, say).
    ``on_wait(try, seconds)`` comes before each wait. Cancel the task to stop: a
    conversation still connecting is ended."""
    for attempt, delay in enumerate(delays, 1):
        on_wait(attempt, delay)
        await sleep(delay)
        conversation = await follow()
        try:
            if await conversation.start():
                return conversation
        except asyncio.CancelledError:
            await asyncio.shield(conversation.end())
            raise
        details = conversation.last_disconnect
        if details is None or not details.transient:
            return None
    return None


def parse_transport(value: object) -> str:
    """``--transport``: websocket or webrtc."""
    text = str(value or "websocket").strip().lower()
    if text not in TRANSPORTS:
        raise ValueError(f"The transport {value!r} is not known: use {' or '.join(TRANSPORTS)}.")
    return text


def parse_livekit_url(value: object) -> str | None:
    """``--livekit-url``: checked as a LiveKit server (wss://, or ws:// on this computer)."""
    if not value or not str(value).strip():
        return None
    try:
        return livekit_url(DEFAULT_SERVER_URL, str(value))
    except EndpointError as exc:
        raise ValueError(str(exc)) from None


def parse_wake_word(value: object) -> str | None:
    """``--wake-word [PATH_OR_NAME]``: ``None`` (or empty: the option without a value)
    means the default hotword; the name or path is checked when the detector loads it."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


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
    settings.environment = plan.options.environment
    settings.branch_id = plan.options.branch_id
    try:
        path = _save_settings(settings)
    except OSError as exc:
        said.append(
            f"The agent and server could not be saved as defaults in {settings_path().parent} "
            f"({exc.strerror or exc}); they are used for this run only."
        )
    else:
        said.append(f"Saved the agent and server as defaults in {path}.")
    if plan.options.api_key and (_opt(args, "api_key") or os.environ.get(API_KEY_ENV)):
        try:
            _save_api_key(plan.options.api_key)
            said.append("Saved the API key in the OS keyring.")
        except SecretStoreError as exc:
            said.append(str(exc))
    return said


class Launcher:
    """Builds one conversation after another for a front end, from a :class:`LaunchPlan`.

    Owns what outlives a single conversation: the local demo agent (started on the
    first demo conversation, stopped by :meth:`close` or when the plan stops being a
    demo) and the audio engine (created on the first voice conversation; PortAudio is
    prepared in the background while the conversation connects). Event loop thread only.
    """

    def __init__(
        self,
        plan: LaunchPlan,
        tools_factory: Callable[[], ToolRegistry],
        *,
        on_levels: LevelListener | None = None,
        demo_config: AgentConfig | None = None,
    ) -> None:
        self._plan = plan
        self._tools_factory = tools_factory
        self._on_levels = on_levels
        self._demo_config = demo_config
        self._server: LocalAgentServer | None = None
        self._engine: AudioEngine | None = None
        self._prepare: asyncio.Future[None] | None = None
        self._preload: asyncio.Future[None] | None = None
        self._push_to_talk = plan.push_to_talk
        self._talking = False
        self._pruned = False
        self._recollection: Recollection | None = None  # of the last conversation
        self._said: set[str] = set()  # settings problems told already

    @property
    def plan(self) -> LaunchPlan:
        return self._plan

    def set_plan(self, plan: LaunchPlan) -> None:
        """Use ``plan`` for the next conversation (a running one keeps its own)."""
        if self._engine is not None and plan.audio != self._plan.audio:
            self._engine.settings = plan.audio
        if plan.demo != self._plan.demo or plan.options.text_only != self._plan.options.text_only:
            self._preload = None
        if plan.push_to_talk != self._plan.push_to_talk:
            self.set_push_to_talk(plan.push_to_talk)
        self._plan = plan

    @property
    def engine(self) -> AudioEngine | None:
        """The audio engine, once a voice conversation (or :meth:`ensure_engine`) made it."""
        return self._engine

    async def ensure_engine(self) -> AudioEngine:
        """The audio engine, made now and PortAudio initialised: hands-free listens for
        the hotword before any conversation. Conversations built afterwards use this
        same engine, so they start on the devices already open. Raises what the audio
        engine's import or PortAudio's start raises."""
        await asyncio.shield(self.preload())
        engine = self._audio_engine()
        await engine.prepare()
        return engine

    @property
    def push_to_talk(self) -> bool:
        return self._push_to_talk

    @property
    def talking(self) -> bool:
        """Push-to-talk: the talk key is held (the microphone's sound goes out)."""
        return self._talking

    def set_push_to_talk(self, enabled: bool) -> None:
        """Push-to-talk on: the microphone sends silence unless :meth:`set_talking`."""
        self._push_to_talk = enabled
        self._talking = False
        if self._engine is not None:
            self._engine.set_push_to_talk(enabled)

    def set_talking(self, held: bool) -> None:
        """The talk key went down (``True``) or up; the engine keeps the last 200 ms
        after it goes up, so the end of a word is not cut."""
        self._talking = held and self._push_to_talk
        if self._engine is not None:
            self._engine.set_talking(self._talking)

    @property
    def demo_url(self) -> str | None:
        return self._server.http_url if self._server is not None else None

    @property
    def demo_server(self) -> LocalAgentServer | None:
        """The running local demo agent (tests and the self-test script it)."""
        return self._server

    def preload(self) -> asyncio.Future[None]:
        """Import what the plan's conversations need (the local agent with numpy, the
        audio engine with soxr and WebRTC: ~0.5 s) in a worker thread, so the event
        loop, which is the GUI's in the window, never stalls on an import. Idempotent."""
        if self._preload is None or (self._preload.done() and self._preload.exception()):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                # A Qt callback while the asyncio loop is not running (a dialog's own
                # event loop, a test processing events): a task made now would take its
                # first step outside the loop and fail. The imports wait for the next call.
                done: asyncio.Future[None] = asyncio.get_event_loop().create_future()
                done.set_result(None)
                return done
            modules: list[str] = []
            if self._plan.demo:
                modules.append("voicedesk.localagent")
            if not self._plan.options.text_only:
                modules.append("voicedesk.audio.engine")
            self._preload = asyncio.ensure_future(asyncio.to_thread(_import_all, modules))
        return self._preload

    async def new_conversation(
        self,
        *,
        approver: Approver | None = None,
        tool_asker: ToolAsker | None = None,
        continuing: bool = False,
    ) -> Conversation:
        """A conversation ready to ``start()``, per the current plan. ``approver`` asks
        the user about MCP tool calls that need approval (none: they are denied);
        ``tool_asker`` about client tools set to Ask (none: they are refused).
        ``continuing``: the last conversation dropped (:attr:`can_continue`); once
        connected, the new one sends the agent its recent turns as context."""
        with contextlib.suppress(Exception):  # an import error shows where it is used
            await asyncio.shield(self.preload())
        plan = self._plan
        options = replace(plan.options, dynamic_variables=dict(plan.options.dynamic_variables))
        if plan.demo:
            options.server_url = await self._demo_url()
        elif self._server is not None:
            await self._stop_server()
        engine = None if options.text_only else self._audio_engine()
        conversation = Conversation(
            options,
            tools=self._tools_factory(),
            audio=engine,
            approver=approver,
            tool_gate=self.tool_gate(tool_asker),
        )
        if plan.history:
            self._keep_history(conversation, plan)
        self._tell_settings_problems(conversation)
        earlier = self._recollection if continuing and self.can_continue else None
        if earlier is not None:
            self._send_when_connected(conversation, earlier.context())
        self._recollection = Recollection(earlier=earlier)
        conversation.add_listener(self._recollection)
        return conversation

    @property
    def can_continue(self) -> bool:
        """The last conversation was connected and then dropped by the network."""
        return self._recollection is not None and self._recollection.dropped

    def _tell_settings_problems(self, conversation: Conversation) -> None:
        """A settings file that could not be read is said (once) as the next
        conversation starts, where the user looks."""
        from voicedesk.config import settings_problems

        here = str(settings_path())  # this run's settings file, not another's
        unsaid = [p for p in settings_problems if here in p and p not in self._said]
        if not unsaid:
            return
        self._said.update(unsaid)

        def on_event(event: object) -> None:
            remove()
            for sentence in unsaid:
                conversation.notify(sentence)

        remove = conversation.add_listener(on_event)

    @staticmethod
    def _send_when_connected(conversation: Conversation, context: str) -> None:
        from voicedesk.protocol.machine import Connected

        def on_event(event: object) -> None:
            if isinstance(event, Connected):
                remove()
                conversation.send_contextual_update(context)

        remove = conversation.add_listener(on_event)

    def tool_gate(self, asker: ToolAsker | None) -> ToolGate:
        """The user's permissions for the plan's agent, read at each call (so a change
        in Settings or ``voicedesk permissions`` holds at once): Allow runs, Never
        refuses, Ask asks ``asker``; "always" there sets Allow for good."""
        plan = self._plan
        agent = DEMO_AGENT_ID if plan.demo else (plan.options.agent_id or "")

        async def gate(call: ClientToolCall, seconds: float) -> str | None:
            from voicedesk.config import load_settings
            from voicedesk.tools import permissions as p

            tool = call.tool_name
            permission = p.permission_for(load_settings().tool_permissions, agent, tool)
            if permission is p.Permission.ALLOW:
                return None
            if permission is p.Permission.NEVER:
                return p.REFUSED_NEVER.format(tool=tool)
            if asker is None:
                return p.REFUSED_NO_ANSWER.format(tool=tool)
            answer = await asker(call, seconds)
            if answer == "always":
                settings = load_settings()
                p.set_permission(settings, agent, tool, p.Permission.ALLOW)
                with contextlib.suppress(OSError, SecretStoreError):
                    _save_settings(settings)
            return None if answer in ("once", "always") else p.REFUSED_DENIED.format(tool=tool)

        return gate

    def _keep_history(self, conversation: Conversation, plan: LaunchPlan) -> None:
        """Write the conversation to the history as it happens (old ones pruned first,
        once a run, when a retention is set)."""
        from voicedesk.history import HistoryWriter, prune

        directory = history_dir()
        if not self._pruned:
            self._pruned = True
            days = plan.history_days
            if removed := prune(directory, days):
                logger.info("history: %d conversations older than %d days deleted", removed, days)
        o = plan.options
        writer = HistoryWriter(
            directory,
            agent_id="demo" if plan.demo else o.agent_id,
            server="the local demo agent" if plan.demo else o.server_url,
            transport=o.transport,
            on_problem=conversation.notify,
        )
        conversation.add_listener(writer)

    async def start_demo_agent(self) -> str | None:
        """Start the local demo agent now when the plan talks to it (hands-free does,
        so the first hotword connects at once); its URL, else ``None``. It listens on
        127.0.0.1 only."""
        return await self._demo_url() if self._plan.demo else None

    async def _demo_url(self) -> str:
        if self._server is None:
            from voicedesk.localagent import AgentConfig, LocalAgentServer

            config = self._demo_config or AgentConfig(record=False)
            server = LocalAgentServer(config, port=0)
            await server.start()
            self._server = server
            logger.info("local demo agent on %s", server.http_url)
        return self._server.http_url

    def _audio_engine(self) -> AudioEngine:
        if self._engine is None:
            from voicedesk.audio.engine import AudioEngine

            self._engine = AudioEngine(self._plan.audio, on_levels=self._on_levels)
            if self._push_to_talk:
                self._engine.set_push_to_talk(True)
                self._engine.set_talking(self._talking)
        if self._prepare is None or self._prepare.done():
            # PortAudio takes a moment to start: do it while the conversation connects.
            self._prepare = asyncio.ensure_future(self._engine.prepare())
            self._prepare.add_done_callback(_log_failure)
        return self._engine

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def close(self) -> None:
        """Stop the demo agent and release the audio engine. Safe to call twice."""
        if self._prepare is not None and not self._prepare.done():
            with contextlib.suppress(Exception):
                await self._prepare
        if self._engine is not None:
            await self._engine.close()  # a conversation's audio and hands-free standby
        await self._stop_server()


def _import_all(modules: list[str]) -> None:
    import importlib

    from voicedesk.tools.desktop import import_backends

    with contextlib.suppress(ImportError):
        import_backends()
    for name in modules:
        importlib.import_module(name)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("audio preparation failed: %s", task.exception())


@dataclass(slots=True)
class SettingsForm:
    """What the Settings dialog collects. ``api_key``: ``None`` keeps the saved key,
    ``""`` forgets it."""

    agent_id: str = ""
    api_key: str | None = field(default=None, repr=False)
    server_url: str = ""
    user_id: str = ""
    input_device: str | None = None
    output_device: str | None = None
    echo_cancellation: bool = True
    text_only: bool = False
    environment: str = ""
    branch_id: str = ""
    show_reasoning: bool = False
    hands_free: bool = False
    wake_word: str = ""
    push_to_talk: bool = False
    talk_key: str = DEFAULT_TALK_KEY
    transport: str = "websocket"
    livekit_url: str = ""
    history: bool = True
    history_days: int = 0
    theme: str = "system"
    #: The built-in tools' permissions for the form's agent (the demo without one).
    tool_permissions: dict[str, str] = field(default_factory=dict)


def form_from_settings(settings: Settings) -> SettingsForm:
    return SettingsForm(
        agent_id=settings.agent_id or "",
        server_url=settings.server_url or "",
        user_id=settings.user_id or "",
        input_device=settings.input_device,
        output_device=settings.output_device,
        echo_cancellation=settings.echo_cancellation,
        text_only=settings.text_only,
        environment=settings.environment or "",
        branch_id=settings.branch_id or "",
        show_reasoning=settings.show_reasoning,
        hands_free=settings.hands_free,
        wake_word=settings.wake_word or "",
        push_to_talk=settings.push_to_talk,
        talk_key=settings.talk_key or DEFAULT_TALK_KEY,
        transport=settings.transport,
        livekit_url=settings.livekit_url or "",
        history=settings.history,
        history_days=settings.history_days,
        theme=settings.theme,
        tool_permissions=_tool_permissions(settings, settings.agent_id or DEMO_AGENT_ID),
    )


def _apply_tool_permissions(settings: Settings, agent: str, chosen: Mapping[str, str]) -> None:
    from voicedesk.tools import permissions

    for tool, value in chosen.items():
        permission = permissions.parse_permission(value)
        default = permission is permissions.DEFAULT_PERMISSION
        permissions.set_permission(settings, agent, tool, None if default else permission)


def _tool_permissions(settings: Settings, agent: str) -> dict[str, str]:
    from voicedesk.tools import permissions
    from voicedesk.tools.desktop import desktop_tools

    return {
        tool.definition.name: permissions.permission_for(
            settings.tool_permissions, agent, tool.definition.name
        ).value
        for tool in desktop_tools()
    }


def apply_settings_form(form: SettingsForm, settings: Settings) -> list[str]:
    """Validate ``form``, save it (settings file; key to the OS keyring only) and update
    ``settings`` in place. Returns sentences for the user; raises ``ValueError`` with a
    sentence when the form cannot be saved as it is."""
    from voicedesk.config import delete_api_key
    from voicedesk.session.endpoints import normalize_server_url

    server_url = form.server_url.strip()
    if server_url:
        try:
            server_url = normalize_server_url(server_url)
        except EndpointError as exc:
            raise ValueError(str(exc)) from None
    agent_id = form.agent_id.strip()
    if agent_id and any(c.isspace() for c in agent_id):
        raise ValueError("An agent ID has no spaces. Copy it from the agent's page again.")
    if any(c.isspace() for c in form.environment.strip()):
        raise ValueError("An environment is a single name without spaces (e.g. production).")
    if any(c.isspace() for c in form.branch_id.strip()):
        raise ValueError("A branch ID has no spaces. Copy it from the agent's page again.")
    talk_key = form.talk_key.strip() or DEFAULT_TALK_KEY
    transport = parse_transport(form.transport)
    lk_url = parse_livekit_url(form.livekit_url)
    said: list[str] = []
    if form.api_key is not None:
        key = form.api_key.strip()
        if key:
            try:
                _save_api_key(key)
                said.append("The API key is saved in the OS keyring.")
            except SecretStoreError as exc:
                said.append(str(exc))
        else:
            delete_api_key()
            said.append("The saved API key was removed.")
    settings.agent_id = agent_id or None
    settings.server_url = server_url or None
    settings.user_id = form.user_id.strip() or None
    settings.input_device = form.input_device or None
    settings.output_device = form.output_device or None
    settings.echo_cancellation = form.echo_cancellation
    settings.text_only = form.text_only
    settings.environment = form.environment.strip() or None
    settings.branch_id = form.branch_id.strip() or None
    settings.show_reasoning = form.show_reasoning
    settings.hands_free = form.hands_free
    settings.wake_word = parse_wake_word(form.wake_word)
    settings.push_to_talk = form.push_to_talk
    settings.talk_key = talk_key
    settings.transport = transport
    settings.livekit_url = lk_url
    settings.history = form.history
    settings.history_days = max(0, int(form.history_days))
    settings.theme = form.theme if form.theme in ("system", "light", "dark") else "system"
    _apply_tool_permissions(settings, agent_id or DEMO_AGENT_ID, form.tool_permissions)
    path = _save_settings(settings)
    said.insert(0, f"Settings saved in {path}.")
    return said
