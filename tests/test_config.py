"""Settings files, the keyring, redaction, and how options resolve."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import NoKeyringError, PasswordDeleteError

from voicedesk import app, config, launch
from voicedesk.config import SecretRedactor, SecretStoreError, Settings


class MemoryKeyring(KeyringBackend):
    """Stands in for the OS keyring (there is none on CI)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.passwords:
            raise PasswordDeleteError("no such password")
        del self.passwords[(service, username)]


class NoKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise NoKeyringError("no backend")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise NoKeyringError("no backend")

    def delete_password(self, service: str, username: str) -> None:
        raise NoKeyringError("no backend")


@pytest.fixture
def memory_keyring() -> Any:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Any:
    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    yield
    keyring.set_keyring(previous)


def test_settings_round_trip_and_live_in_the_config_dir(tmp_path: Path) -> None:
    settings = Settings(
        agent_id="agent_1", server_url="eu", dynamic_variables={"a": "b"}, volume=0.4
    )
    path = config.save_settings(settings)
    assert path == tmp_path / "config" / "settings.json"
    assert config.load_settings() == settings


def test_hands_free_settings_round_trip_and_default() -> None:
    assert Settings().talk_key == "Space"
    assert Settings().wake_word is None
    settings = Settings(hands_free=True, wake_word="hey_computer", push_to_talk=True, talk_key="F9")
    config.save_settings(settings)
    assert config.load_settings() == settings


def test_missing_corrupt_and_odd_settings_files(tmp_path: Path) -> None:
    assert config.load_settings() == Settings()
    path = config.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("{broken")
    assert config.load_settings() == Settings()
    path.write_text("[1, 2]")
    assert config.load_settings() == Settings()
    path.write_text(
        json.dumps({"agent_id": 5, "text_only": "yes", "volume": 0.5, "unknown": 1, "user_id": "u"})
    )
    assert config.load_settings() == Settings(volume=0.5, user_id="u")


def test_api_key_goes_to_the_keyring_only(memory_keyring: MemoryKeyring, tmp_path: Path) -> None:
    key = "sk_keyring_test_0123456789"
    config.save_api_key(key)
    assert memory_keyring.passwords == {("voicedesk", "elevenlabs-api-key"): key}
    assert config.load_api_key() == key
    config.delete_api_key()
    config.delete_api_key()  # twice is fine
    assert config.load_api_key() is None


def test_no_keyring_is_a_sentence_and_never_a_file(no_keyring: None, tmp_path: Path) -> None:
    with pytest.raises(SecretStoreError, match=r"no usable keyring.*never writes"):
        config.save_api_key("sk_nowhere_to_go_123456")
    assert config.load_api_key() is None
    config.delete_api_key()
    assert not any("sk_nowhere" in p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_remember_saves_settings_and_the_key_apart(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    key = "sk_remember_me_0123456789"
    args = app.build_parser().parse_args(
        ["console", "--agent-id", "agent_7", "--api-key", key, "--server-url", "us", "--remember"]
    )
    settings = Settings()
    plan = launch.resolve(args, settings, {})
    said = launch.remember(args, plan, settings)
    assert said == [
        f"Saved the agent and server as defaults in {config.settings_path()}.",
        "Saved the API key in the OS keyring.",
    ]
    text = config.settings_path().read_text()
    assert key not in text
    assert json.loads(text)["agent_id"] == "agent_7"
    # Next launch: no options, and the key comes from the keyring.
    plan = launch.resolve(app.build_parser().parse_args(["console"]), config.load_settings(), {})
    assert (plan.demo, plan.options.agent_id, plan.options.api_key, plan.options.server_url) == (
        False,
        "agent_7",
        key,
        "us",
    )


def test_remember_says_nothing_to_save_for_the_demo() -> None:
    args = app.build_parser().parse_args(["--demo", "--remember"])
    assert launch.remember(args, launch.resolve(args, Settings(), {}), Settings()) == [
        "--remember: nothing to save for the demo agent."
    ]


def test_remember_without_a_keyring_explains(no_keyring: None) -> None:
    args = app.build_parser().parse_args(
        ["--agent-id", "a", "--api-key", "sk_abcdefgh12345", "--remember"]
    )
    said = launch.remember(args, launch.resolve(args, Settings(), {}), Settings())
    assert "no usable keyring" in said[-1]


def test_options_beat_environment_beat_settings(no_keyring: None) -> None:
    parser = app.build_parser()
    settings = Settings(
        agent_id="from_settings", dynamic_variables={"a": "1", "b": "1"}, user_id="su"
    )
    env = {"ELEVENLABS_AGENT_ID": "from_env", "ELEVENLABS_API_KEY": "sk_env_key_123456"}
    plan = launch.resolve(
        parser.parse_args(["console", "--var", "b=2", "--var", "c=x=y"]), settings, env
    )
    assert plan.options.agent_id == "from_env"
    assert plan.options.api_key == "sk_env_key_123456"
    assert plan.options.dynamic_variables == {"a": "1", "b": "2", "c": "x=y"}
    assert plan.options.user_id == "su"
    plan = launch.resolve(parser.parse_args(["--agent-id", "from_cli", "console"]), settings, env)
    assert plan.options.agent_id == "from_cli"
    plan = launch.resolve(parser.parse_args(["console"]), settings, {})
    assert plan.options.agent_id == "from_settings"
    assert plan.options.api_key is None
    plan = launch.resolve(parser.parse_args(["console", "--demo"]), settings, env)
    assert plan.demo
    assert plan.options.agent_id == "demo"
    assert plan.options.api_key is None


def test_redaction_of_keys_and_signatures() -> None:
    SecretRedactor.register("my-registered-secret-value")
    cases = {
        "GET wss://x/?agent_id=a&conversation_signature=abc.def-123&source=v": (
            "conversation_signature=[redacted]&source=v"
        ),
        "headers {'xi-api-key': 'sk_0123456789abcdef'}": "'xi-api-key': '[redacted]'",
        "api_key=plainsecret12 used": "api_key=[redacted] used",
        "token=abcdef&x=1": "token=[redacted]&x=1",
        "the key sk_0123456789abcdef leaked": "the key [redacted] leaked",
        "value my-registered-secret-value here": "value [redacted] here",
    }
    for raw, expected in cases.items():
        assert expected in SecretRedactor.redact(raw)


def test_log_records_and_tracebacks_are_redacted(tmp_path: Path) -> None:
    path = config.setup_logging("DEBUG")
    assert path == tmp_path / "logs" / "voicedesk.log"
    log = logging.getLogger("voicedesk.test")
    log.info("signed url %s", "wss://h/x?conversation_signature=SIGNATURE123")
    try:
        raise RuntimeError("failed with xi-api-key: sk_abcdef0123456789")
    except RuntimeError:
        log.exception("boom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = path.read_text()
    assert "SIGNATURE123" not in text
    assert "sk_abcdef0123456789" not in text
    assert "conversation_signature=[redacted]" in text
    assert "RuntimeError" in text  # the traceback is kept, minus the secret
    config.setup_logging("INFO")  # a second set-up replaces, not duplicates, the handlers
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_voicedesk", False)]
    assert len(ours) == 1


def test_an_unwritable_log_dir_is_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("VOICEDESK_LOG_DIR", str(blocker / "logs"))
    assert config.setup_logging("INFO", to_stderr=True) is None
