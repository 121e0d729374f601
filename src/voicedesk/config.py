"""Settings (a JSON file where the OS keeps app settings), the API key (OS keyring only),
and logging with secrets redacted.

The API key never goes into the settings file, a log line, or a console line:
:class:`SecretRedactor` scrubs it (and signed-URL signatures) from every log record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "voicedesk"
KEYRING_SERVICE = "voicedesk"
KEYRING_USER = "elevenlabs-api-key"
CONFIG_DIR_ENV = "VOICEDESK_CONFIG_DIR"
LOG_DIR_ENV = "VOICEDESK_LOG_DIR"
DATA_DIR_ENV = "VOICEDESK_DATA_DIR"
HISTORY_DIR_ENV = "VOICEDESK_HISTORY_DIR"

logger = logging.getLogger(__name__)


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    return Path(override) if override else platformdirs.user_config_path(APP_NAME, appauthor=False)


def log_dir() -> Path:
    override = os.environ.get(LOG_DIR_ENV)
    return Path(override) if override else platformdirs.user_log_path(APP_NAME, appauthor=False)


def data_dir() -> Path:
    """``platformdirs.user_data_path("voicedesk")`` unless ``VOICEDESK_DATA_DIR`` is set
    (tests, portable installs): hotwords and the conversation history live there."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def history_dir() -> Path:
    """Where the conversation history is written: ``<user data>/history`` unless
    ``VOICEDESK_HISTORY_DIR`` is set."""
    override = os.environ.get(HISTORY_DIR_ENV, "").strip()
    return Path(override).expanduser() if override else data_dir() / "history"


@dataclass(slots=True)
class Settings:
    """What the user chose; persisted as JSON. No secrets here, ever."""

    agent_id: str | None = None
    server_url: str | None = None
    user_id: str | None = None
    dynamic_variables: dict[str, str] = field(default_factory=dict)
    text_only: bool = False
    input_device: str | None = None
    output_device: str | None = None
    echo_cancellation: bool = True
    volume: float = 1.0
    environment: str | None = None  # the agent's deployment environment (e.g. "staging")
    branch_id: str | None = None  # the agent's branch
    show_reasoning: bool = False  # show the agent's reasoning in the transcript
    hands_free: bool = False  # the window listens for the hotword (console: --wake-word)
    wake_word: str | None = None  # a hotword's name or reference file; None: "hey eleven"
    push_to_talk: bool = False  # the microphone sends silence unless the talk key is held
    talk_key: str = "Space"  # the window's push-to-talk key (a Qt key sequence)
    # Always at hand (the tray, global shortcuts, the window's place): ui/shell.py.
    close_quits: bool = False  # closing the window quits even during a conversation
    shortcut_start_end: str = "Ctrl+Alt+Space"  # a global shortcut (Qt key sequence; "": none)
    shortcut_mute: str = "Ctrl+Alt+M"
    window_geometry: str | None = None  # Qt's saveGeometry(), base64
    compact: bool = False  # the window was in compact mode when it closed
    transport: str = "websocket"  # or "webrtc": the voice as WebRTC tracks (LiveKit)
    livekit_url: str | None = None  # a LiveKit server of one's own instead of the region's
    #: Per agent, per client tool: "allow", "ask" or "never" (unnamed tools: allowed).
    tool_permissions: dict[str, dict[str, str]] = field(default_factory=dict)
    history: bool = True  # every conversation is written to the history as it happens
    history_days: int = 0  # conversations older than this are deleted; 0: kept
    reconnect_tries: int = 5  # automatic tries to continue after a network drop; 0: ask
    theme: str = "system"  # the window: "system" (follow the platform), "light" or "dark"

    @classmethod
    def from_json(cls, data: Any) -> Settings:
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        settings = cls()
        for key, value in values.items():
            default = getattr(settings, key)
            optional_str = default is None and (value is None or isinstance(value, str))
            if optional_str or (default is not None and isinstance(value, type(default))):
                setattr(settings, key, value)
        return settings


def settings_path() -> Path:
    return config_dir() / "settings.json"


#: Sentences about settings files that could not be read, for the user (once each).
settings_problems: list[str] = []
DAMAGED_SUFFIX = ".damaged"


def load_settings(path: Path | None = None) -> Settings:
    """The saved settings; defaults when the file is missing or unreadable.

    An unreadable file is logged, kept aside as ``settings.json.damaged`` (the next save
    would overwrite it) and said once in :data:`settings_problems`."""
    path = path or settings_path()
    try:
        return Settings.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        logger.warning("settings file %s is unreadable (%s); using defaults", path, exc)
        kept = path.with_name(path.name + DAMAGED_SUFFIX)
        with contextlib.suppress(OSError):
            if not kept.exists():
                kept.write_bytes(path.read_bytes())
        sentence = (
            f"The settings file {path} could not be read, so voicedesk started with the "
            f"default settings; the damaged file is kept as {kept.name}."
        )
        if sentence not in settings_problems:
            settings_problems.append(sentence)
        return Settings()


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write atomically (a crash never leaves half a file; a full or read-only disk
    raises ``OSError`` and leaves the old file as it was, and no temporary file)."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(asdict(settings), indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


class SecretStoreError(Exception):
    """The OS keyring could not be used; the message is a sentence for the user."""


def load_api_key() -> str | None:
    """The saved API key from the OS keyring, or ``None`` (no key, or no keyring)."""
    import keyring
    from keyring.errors import KeyringError

    try:
        key = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
    except KeyringError as exc:
        logger.info("no usable OS keyring: %s", type(exc).__name__)
        return None
    if key:
        SecretRedactor.register(key)
    return key or None


def save_api_key(key: str) -> None:
    """Store the API key in the OS keyring; never anywhere else."""
    import keyring
    from keyring.errors import KeyringError, KeyringLocked

    SecretRedactor.register(key)
    try:
        keyring.set_password(KEYRING_SERVICE, KEYRING_USER, key)
    except KeyringLocked:
        raise SecretStoreError(
            "The API key could not be saved: the keyring is locked. Unlock it (your "
            "desktop's keyring or password manager) and try again, or set "
            "ELEVENLABS_API_KEY; voicedesk never writes the key to a plain file."
        ) from None
    except KeyringError as exc:
        raise SecretStoreError(
            "The API key could not be saved: this system has no usable keyring "
            f"({type(exc).__name__}). Set ELEVENLABS_API_KEY instead; voicedesk never writes "
            "the key to a plain file."
        ) from None


def delete_api_key() -> None:
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    with contextlib.suppress(PasswordDeleteError, KeyringError):
        keyring.delete_password(KEYRING_SERVICE, KEYRING_USER)


class SecretRedactor(logging.Filter):
    """Scrubs API keys and signed-URL signatures from log records.

    Known secrets (registered when read) are replaced wherever they appear; patterns
    catch the ones never registered (``xi-api-key`` headers, ``conversation_signature``
    and ``token`` query parameters, ``sk_…`` keys).
    """

    _secrets: set[str] = set()  # noqa: RUF012 - one registry for the process
    _PATTERNS = (
        re.compile(r"(conversation_signature=)[^&\s'\"]+"),
        re.compile(r"(token=)[^&\s'\"]+"),
        re.compile(r"(xi-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+", re.IGNORECASE),
        re.compile(r"(api[_-]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+", re.IGNORECASE),
        re.compile(r"()\bsk_[A-Za-z0-9]{8,}"),
    )
    MASK = "[redacted]"

    @classmethod
    def register(cls, secret: str) -> None:
        if len(secret) >= 4:
            cls._secrets.add(secret)

    @classmethod
    def redact(cls, text: str) -> str:
        for secret in cls._secrets:
            text = text.replace(secret, cls.MASK)
        for pattern in cls._PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + cls.MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return SecretRedactor.redact(super().format(record))


def setup_logging(level: str = "INFO", *, to_stderr: bool = False) -> Path | None:
    """A rotating log file in the user log dir (and stderr if asked), secrets redacted.

    Returns the log file's path, or ``None`` when the log dir is not writable.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_voicedesk", False):
            root.removeHandler(handler)
            handler.close()
    formatter = _RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    path: Path | None = log_dir() / "voicedesk.log"
    handlers: list[logging.Handler] = []
    try:
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                path, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
            )
        )
    except OSError:
        path = None
    if to_stderr:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(SecretRedactor())
        handler._voicedesk = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # websockets logs every frame at DEBUG, base64 audio included: keep it out.
    logging.getLogger("websockets").setLevel(max(logging.INFO, root.level))
    return path
