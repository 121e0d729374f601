"""The initiation overrides and endpoints from the command line and settings, as resolved
into the conversation's options, and the sentences for options that cannot be used."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from voicedesk import app, config, launch
from voicedesk.config import Settings
from voicedesk.protocol.catalog import CLIENT_EVENT_TYPES
from voicedesk.session import Conversation
from voicedesk.session.endpoints import REGIONS
from voicedesk.tools import ToolRegistry


def resolve(*argv: str, settings: Settings | None = None) -> launch.LaunchPlan:
    args = app.build_parser().parse_args(list(argv))
    return launch.resolve(args, settings or Settings(), {})


def test_every_override_of_the_contract_is_an_option() -> None:
    plan = resolve(
        "console",
        "--agent-id",
        "agent_1",
        "--prompt",
        "You are terse.",
        "--llm",
        "gemini-2.0-flash",
        "--first-message",
        "Hi.",
        "--language",
        "de",
        "--voice-id",
        "voice_9",
        "--tts-speed",
        "1.2",
        "--tts-stability",
        "0.4",
        "--tts-similarity",
        "1",
        "--asr-keyword",
        "voicedesk",
        "--asr-keyword",
        "ElevenLabs",
        "--asr-keyword",
        "voicedesk",
        "--client-events",
        "audio, agent_response,agent_tool_response",
        "--llm-extra-body",
        '{"temperature": 0.2, "tags": ["a"]}',
        "--environment",
        "staging",
        "--branch-id",
        "agtbrch_7",
        "--text-only",
        "--show-reasoning",
    )
    o = plan.options
    assert (o.prompt, o.llm, o.first_message, o.language, o.voice_id) == (
        "You are terse.",
        "gemini-2.0-flash",
        "Hi.",
        "de",
        "voice_9",
    )
    assert (o.tts_speed, o.tts_stability, o.tts_similarity_boost) == (1.2, 0.4, 1.0)
    assert o.asr_keywords == ("voicedesk", "ElevenLabs")
    assert o.client_events == ("audio", "agent_response", "agent_tool_response")
    assert o.custom_llm_extra_body == {"temperature": 0.2, "tags": ["a"]}
    assert (o.environment, o.branch_id, o.text_only) == ("staging", "agtbrch_7", True)
    assert plan.show_reasoning
    # ... and they reach the initiation message.
    initiation = json.loads(_initiation_frame(Conversation(o)))
    override = initiation["conversation_config_override"]
    assert override["agent"] == {
        "prompt": {"prompt": "You are terse.", "llm": "gemini-2.0-flash"},
        "first_message": "Hi.",
        "language": "de",
    }
    assert override["tts"] == {
        "voice_id": "voice_9",
        "speed": 1.2,
        "stability": 0.4,
        "similarity_boost": 1.0,
    }
    assert override["asr"] == {"keywords": ["voicedesk", "ElevenLabs"]}
    # Asked for on top of the events every agent sends (the session adds those).
    asked = override["conversation"]["client_events"]
    assert {"audio", "agent_response", "agent_tool_response"} <= set(asked)
    assert override["conversation"]["text_only"] is True
    assert initiation["custom_llm_extra_body"] == {"temperature": 0.2, "tags": ["a"]}


def _initiation_frame(conversation: Conversation) -> str:
    from voicedesk.protocol.parse import serialize

    return serialize(conversation._initiation())


def test_without_overrides_nothing_is_overridden() -> None:
    o = resolve("console", "--agent-id", "a").options
    assert o.prompt is o.llm is o.tts_speed is o.asr_keywords is o.client_events is None
    assert o.custom_llm_extra_body is o.environment is o.branch_id is None
    initiation = json.loads(_initiation_frame(Conversation(o)))
    # Without an audio port the conversation is text only, which it tells the agent.
    assert initiation["conversation_config_override"] == {"conversation": {"text_only": True}}
    assert "custom_llm_extra_body" not in initiation


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (
            ["--tts-speed", "6"],
            "--tts-speed is the agent's speaking speed (1.0 is normal): a number from 0.7 "
            "to 5, not '6'.",
        ),
        (["--tts-speed", "0.5"], "a number from 0.7 to 5, not '0.5'."),
        (["--tts-stability", "-0.1"], "--tts-stability is the voice's stability: a number from"),
        (["--tts-similarity", "much"], "similarity boost: a number from 0 to 1, not 'much'."),
        (["--tts-stability", "nan"], "a number from 0 to 1, not 'nan'."),
        (
            ["--client-events", "audio,pings,vads"],
            "'pings', 'vads' are not events an agent can be asked",
        ),
        (
            ["--client-events", "error"],
            "'error' is not an event an agent can be asked to send. Choose",
        ),
        (["--client-events", " , "], "--client-events needs event types separated by commas"),
        (["--llm-extra-body", "[1, 2]"], "must be a JSON object (in braces"),
        (["--llm-extra-body", "3"], "not a number."),
        (["--llm-extra-body", "null"], "not null."),
        (["--llm-extra-body", "{'a': 1}"], "it is not valid JSON (Expecting property name"),
        (["--environment", "my env"], "--environment is a single name without spaces"),
        (["--branch-id", "a b"], "--branch-id is a single name without spaces"),
    ],
)
def test_unusable_options_are_sentences(argv: list[str], sentence: str) -> None:
    with pytest.raises(ValueError, match=re.escape(sentence)):
        resolve("console", "--agent-id", "a", *argv)


def test_the_client_events_sentence_lists_the_contract_s_events() -> None:
    with pytest.raises(ValueError, match="Choose from") as raised:
        resolve("console", "--client-events", "nope")
    for name in ("audio", "agent_tool_request", "mcp_tool_call", "vad_score"):
        assert name in CLIENT_EVENT_TYPES
        assert name in str(raised.value)


def test_the_bounds_themselves_are_allowed() -> None:
    o = resolve(
        "console", "--tts-speed", "0.7", "--tts-stability", "0", "--tts-similarity", "1"
    ).options
    assert (o.tts_speed, o.tts_stability, o.tts_similarity_boost) == (0.7, 0.0, 1.0)
    assert resolve("console", "--tts-speed", "5").options.tts_speed == 5.0


def test_the_command_line_prints_the_sentence_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert app.main(["console", "--demo", "--tts-speed", "fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("voicedesk: --tts-speed is the agent's speaking speed")


def test_environment_branch_and_reasoning_come_from_settings_unless_given() -> None:
    settings = Settings(environment="production", branch_id="b1", show_reasoning=True)
    plan = resolve("console", "--agent-id", "a", settings=settings)
    assert (plan.options.environment, plan.options.branch_id, plan.show_reasoning) == (
        "production",
        "b1",
        True,
    )
    plan = resolve("console", "--agent-id", "a", "--environment", "staging", settings=settings)
    assert plan.options.environment == "staging"
    assert not resolve("console").show_reasoning


def test_settings_keep_the_new_fields_and_remember_saves_the_deployment(
    tmp_path: Any,
) -> None:
    settings = Settings(environment="staging", branch_id="b2", show_reasoning=True)
    config.save_settings(settings)
    assert config.load_settings() == settings
    args = app.build_parser().parse_args(
        ["console", "--agent-id", "a", "--environment", "prod", "--branch-id", "b9", "--remember"]
    )
    fresh = Settings()
    launch.remember(args, launch.resolve(args, fresh, {}), fresh)
    saved = config.load_settings()
    assert (saved.environment, saved.branch_id) == ("prod", "b9")


def test_the_settings_form_checks_and_saves_the_deployment() -> None:
    settings = Settings()
    form = launch.form_from_settings(Settings(environment="e", branch_id="b", show_reasoning=True))
    assert (form.environment, form.branch_id, form.show_reasoning) == ("e", "b", True)
    launch.apply_settings_form(form, settings)
    assert (settings.environment, settings.branch_id, settings.show_reasoning) == ("e", "b", True)
    form.environment = "two words"
    with pytest.raises(ValueError, match="An environment is a single name"):
        launch.apply_settings_form(form, settings)
    form.environment, form.branch_id = " ", "x y"
    with pytest.raises(ValueError, match="A branch ID has no spaces"):
        launch.apply_settings_form(form, settings)
    form.branch_id = ""
    launch.apply_settings_form(form, settings)
    assert settings.environment is settings.branch_id is None


def test_the_transport_comes_from_the_option_or_the_settings() -> None:
    assert resolve("console", "--agent-id", "a").options.transport == "websocket"
    plan = resolve("console", "--agent-id", "a", settings=Settings(transport="webrtc"))
    assert plan.options.transport == "webrtc"
    plan = resolve(
        "console", "--agent-id", "a", "--transport", "webrtc", "--livekit-url", "wss://lk.a.b"
    )
    assert (plan.options.transport, plan.options.livekit_url) == ("webrtc", "wss://lk.a.b")
    with pytest.raises(ValueError, match="is not encrypted"):
        resolve("console", "--agent-id", "a", "--livekit-url", "ws://lk.example.com")
    with pytest.raises(SystemExit):
        resolve("console", "--transport", "carrier-pigeon")


def test_the_settings_form_keeps_the_transport() -> None:
    settings = Settings()
    form = launch.form_from_settings(Settings(transport="webrtc", livekit_url="wss://lk.a.b"))
    assert (form.transport, form.livekit_url) == ("webrtc", "wss://lk.a.b")
    launch.apply_settings_form(form, settings)
    assert (settings.transport, settings.livekit_url) == ("webrtc", "wss://lk.a.b")
    assert config.load_settings().transport == "webrtc"
    form.livekit_url = "https://lk.a.b"
    with pytest.raises(ValueError, match=re.escape("LiveKit URL 'https://lk.a.b' is not")):
        launch.apply_settings_form(form, settings)


def test_the_server_url_help_lists_every_region() -> None:
    text = app.build_parser().format_help()
    assert "global, us, eu, in, sg" in text
    assert set(REGIONS) == {"global", "us", "eu", "in", "sg"}
    for option in (
        "--prompt",
        "--llm",
        "--tts-speed",
        "--tts-stability",
        "--tts-similarity",
        "--asr-keyword",
        "--client-events",
        "--llm-extra-body",
        "--environment",
        "--branch-id",
        "--show-reasoning",
    ):
        assert option in text


async def test_the_launcher_gives_the_approver_to_the_conversation() -> None:
    async def approve(call: object) -> bool:
        return True

    launcher = launch.Launcher(resolve("console", "--agent-id", "a", "--text-only"), ToolRegistry)
    conversation = await launcher.new_conversation(approver=approve)
    assert conversation.approver is approve
    assert (await launcher.new_conversation()).approver is None
    await launcher.close()


# --------------------------------------------------------------------------- hands-free


def test_wake_word_and_push_to_talk_options_and_settings() -> None:
    plan = resolve("console", "--demo")
    assert not plan.hands_free
    assert plan.wake_word is None
    assert not plan.push_to_talk
    assert plan.talk_key == "Space"
    plan = resolve("console", "--wake-word")
    assert plan.hands_free
    assert plan.wake_word is None  # the built-in "hey eleven"
    plan = resolve("console", "--wake-word", "hey_computer", "--push-to-talk")
    assert (plan.hands_free, plan.wake_word, plan.push_to_talk) == (True, "hey_computer", True)
    saved = Settings(hands_free=True, wake_word="hey_computer", push_to_talk=True, talk_key="F9")
    plan = resolve("console", settings=saved)
    # The window's switch (saved) does not make the console listen: only --wake-word does.
    assert not plan.hands_free
    assert (plan.wake_word, plan.push_to_talk, plan.talk_key) == ("hey_computer", True, "F9")
    assert resolve("console", "--wake-word", settings=saved).wake_word == "hey_computer"
    assert resolve("console", "--wake-word", "x.json", settings=saved).wake_word == "x.json"


def test_wake_word_cannot_go_with_text_only() -> None:
    with pytest.raises(ValueError, match="cannot go with --text-only"):
        resolve("console", "--wake-word", "--text-only")


class FakeEngine:
    made: list[FakeEngine] = []  # noqa: RUF012

    def __init__(self, settings: object, *, on_levels: object = None) -> None:
        self.push_to_talk = False
        self.talking = False
        self.prepared = 0
        FakeEngine.made.append(self)

    async def prepare(self) -> None:
        self.prepared += 1

    def set_push_to_talk(self, enabled: bool) -> None:
        self.push_to_talk = enabled

    def set_talking(self, held: bool) -> None:
        self.talking = held

    async def close(self) -> None:
        pass


async def test_the_engine_is_made_before_any_conversation_and_conversations_share_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicedesk.audio import engine as engine_module

    FakeEngine.made.clear()
    monkeypatch.setattr(engine_module, "AudioEngine", FakeEngine)
    launcher = launch.Launcher(resolve("console", "--demo", "--push-to-talk"), ToolRegistry)
    launcher.set_talking(True)  # the key held before the engine exists
    engine = await launcher.ensure_engine()
    assert isinstance(engine, FakeEngine)
    assert engine.prepared >= 1
    assert (engine.push_to_talk, engine.talking) == (True, True)
    assert await launcher.ensure_engine() is engine
    conversation = await launcher.new_conversation()
    assert conversation._audio is engine  # the conversation starts on the open devices
    launcher.set_talking(False)
    assert not engine.talking
    launcher.set_plan(resolve("console", "--demo"))  # push-to-talk off in Settings
    assert not engine.push_to_talk
    launcher.set_talking(True)
    assert not engine.talking, "no talking without push-to-talk"
    assert len(FakeEngine.made) == 1
    await launcher.close()
