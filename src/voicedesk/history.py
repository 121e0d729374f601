"""The conversation history: every conversation written down as it happens.

One JSON Lines file per conversation in :func:`voicedesk.config.history_dir`, one event
per line, flushed as each event comes, so a crash or ``kill -9`` in the middle of a
call loses at most the event being written. Recorded: the start (agent, server,
transport), the conversation id, what the user said or typed (and context sent), the
agent's replies and their corrections, tool calls with parameters and results (client,
the agent's own and MCP), errors, and how the conversation ended. Never the API key or
a signed URL (neither is written; any string that contains a registered secret is
redacted on the way in).

Readers apply corrections, tolerate a last line cut short (a crash mid-write) and say
so; ``voicedesk history`` lists, shows, exports and deletes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from voicedesk.config import SecretRedactor
from voicedesk.protocol.errors import ABNORMAL_CLOSURE, DisconnectDetails, DisconnectReason
from voicedesk.protocol.events import (
    AgentResponse,
    AgentResponseCorrection,
    AgentToolRequest,
    AgentToolResponse,
    McpToolCall,
    UserTranscript,
)
from voicedesk.protocol.machine import Connected, Disconnected, ErrorReported
from voicedesk.session.events import (
    SessionEvent,
    ToolCallFinished,
    ToolCallStarted,
    UserTextSent,
)
from voicedesk.tools.registry import TOOL_FAILED_PREFIX

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
_ID = re.compile(r"[0-9a-f-]{1,40}")  # 20261126-183012-a1b2c3, or a start of it
FORMAT_VERSION = 1


class HistoryError(Exception):
    """A history entry that cannot be found, read or removed; a sentence for the user."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(value: Any) -> Any:
    """``value`` with every registered secret redacted from its strings."""
    if isinstance(value, str):
        return SecretRedactor.redact(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return SecretRedactor.redact(str(value))


class HistoryWriter:
    """A conversation's listener that appends its events to a file of its own.

    The file is made with the first event worth keeping; a failure to write (a full or
    read-only disk) is said once through ``on_problem`` and the conversation goes on."""

    def __init__(
        self,
        directory: Path,
        *,
        agent_id: str | None,
        server: str,
        transport: str,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self._start = {
            "agent_id": agent_id,
            "server": server,
            "transport": transport,
            "version": FORMAT_VERSION,
        }
        self._on_problem = on_problem
        self._file: IO[str] | None = None
        self._broken = False
        self.path: Path | None = None

    def __call__(self, event: SessionEvent) -> None:
        record = _record_of(event)
        if record is None:
            return
        self.write(record)
        if isinstance(event, Disconnected):
            self.close()

    def write(self, record: dict[str, Any]) -> None:
        if self._broken:
            return
        try:
            if self._file is None:
                self._open()
            assert self._file is not None
            line = json.dumps(_clean({"t": _now(), **record}), ensure_ascii=False)
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            self._broken = True
            self.close()
            sentence = (
                f"The conversation history could not be written ({exc.strerror or exc}); "
                "this conversation is not kept."
            )
            logger.warning("%s", sentence)
            if self._on_problem is not None:
                self._on_problem(sentence)

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.path = self.directory / f"{stamp}-{secrets.token_hex(3)}{SUFFIX}"
        self._file = self.path.open("a", encoding="utf-8")
        line = json.dumps(_clean({"t": _now(), "type": "start", **self._start}))
        self._file.write(line + "\n")

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()


def _record_of(event: SessionEvent) -> dict[str, Any] | None:
    """The line an event becomes; ``None`` for events the history does not keep."""
    match event:
        case Connected(conversation_id=conversation_id):
            return {"type": "connected", "conversation_id": conversation_id}
        case UserTranscript(text=text, event_id=event_id):
            return {"type": "user", "text": text, "event_id": event_id}
        case UserTextSent(text=text, kind=kind):
            return {"type": "context" if kind == "context" else "user", "text": text}
        case AgentResponse(text=text, event_id=event_id):
            return {"type": "agent", "text": text, "event_id": event_id}
        case AgentResponseCorrection(corrected_text=text, event_id=event_id):
            return {"type": "correction", "text": text, "event_id": event_id}
        case ToolCallStarted(tool_call_id=call_id, tool_name=name, parameters=params):
            return {"type": "tool_call", "id": call_id, "tool": name, "parameters": params}
        case ToolCallFinished():
            return {
                "type": "tool_result",
                "id": event.tool_call_id,
                "tool": event.tool_name,
                "result": event.result,
                "is_error": event.is_error,
            }
        case AgentToolRequest():
            return {
                "type": "agent_tool_call",
                "id": event.tool_call_id,
                "tool": event.tool_name,
                "tool_type": event.tool_type,
            }
        case AgentToolResponse():
            return {
                "type": "agent_tool_result",
                "id": event.tool_call_id,
                "tool": event.tool_name,
                "result": event.full_result,
                "is_error": event.is_error,
            }
        case McpToolCall():
            return {
                "type": "mcp_tool",
                "id": event.tool_call_id,
                "tool": event.tool_name,
                "state": str(getattr(event.state, "value", event.state)),
                "parameters": event.parameters,
                "result": event.result,
                "error": event.error_message,
            }
        case ErrorReported(message=message, error_type=error_type):
            return {"type": "error", "message": message, "error_type": error_type}
        case Disconnected(details=details):
            return {"type": "ended", "reason": details.reason.value, "message": details.message}
        case _:
            return None


# --------------------------------------------------------------------------- continuing

#: At most this much of the earlier conversation goes to the agent when it continues.
CONTINUATION_MAX_CHARS = 2000


class Recollection:
    """A conversation's listener that remembers its words (in memory, whether or not the
    history is kept), to continue it after a drop."""

    def __init__(self, keep: int = 40, *, earlier: Recollection | None = None) -> None:
        """``earlier``: the dropped conversation this one continues; its turns come first,
        so a thread that drops twice is told whole (within the size bound)."""
        self.turns: deque[tuple[str, str]] = deque(earlier.turns if earlier else (), maxlen=keep)
        self.conversation_id: str | None = None
        self.details: DisconnectDetails | None = None
        self._earlier_id = earlier.thread_id if earlier else None

    def __call__(self, event: SessionEvent) -> None:
        record = _record_of(event)
        if record is None:
            return
        kind = record["type"]
        if kind == "connected":
            self.conversation_id = record["conversation_id"]
        elif kind in ("user", "agent") and record.get("text"):
            self.turns.append(("User" if kind == "user" else "Agent", str(record["text"])))
        elif kind == "correction" and self.turns and self.turns[-1][0] == "Agent":
            self.turns[-1] = ("Agent", str(record["text"]))
        if isinstance(event, Disconnected):
            self.details = event.details

    @property
    def dropped(self) -> bool:
        """It was connected and then lost by the network: not ended by the user, the
        agent, or an error the agent reported."""
        d = self.details
        if d is None or d.reason is not DisconnectReason.ERROR or d.error_type is not None:
            return False
        if self.conversation_id is not None:
            return d.close_code in (None, ABNORMAL_CLOSURE)
        # Continuing a dropped one, it could not connect yet for a reason that may pass:
        # the thread can still be picked up.
        return self._earlier_id is not None and d.transient

    @property
    def thread_id(self) -> str | None:
        """This conversation's id, or while it never connected, the one it continues."""
        return self.conversation_id or self._earlier_id

    def context(self, max_chars: int = CONTINUATION_MAX_CHARS) -> str:
        """The earlier turns as one contextual update, the most recent ones kept."""
        head = (
            f"Earlier in this conversation (conversation {self.thread_id}, cut off by "
            "a network failure and now continued), the user and you said:"
        )
        lines: list[str] = []
        used = len(head)
        for who, text in reversed(self.turns):
            line = f"{who}: {text}"
            if used + len(line) + 1 > max_chars:
                break
            lines.append(line)
            used += len(line) + 1
        return "\n".join([head, *reversed(lines)])


# --------------------------------------------------------------------------- reading


@dataclass
class HistoryEntry:
    """One conversation as kept: its lines (corrections not yet applied)."""

    id: str
    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    damaged: bool = False  # its last line was cut short (a crash while writing)

    @property
    def start(self) -> dict[str, Any]:
        return next((r for r in self.records if r.get("type") == "start"), {})

    @property
    def started_at(self) -> str:
        return str(self.start.get("t", ""))

    @property
    def started_local(self) -> str:
        """When it started, in this computer's time zone: ``2026-11-26 19:04``."""
        try:
            moment = datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
        except ValueError:
            return self.started_at
        return moment.astimezone().strftime("%Y-%m-%d %H:%M")

    @property
    def agent_id(self) -> str:
        return str(self.start.get("agent_id") or "?")

    @property
    def conversation_id(self) -> str | None:
        found = next((r for r in self.records if r.get("type") == "connected"), None)
        return str(found["conversation_id"]) if found else None

    @property
    def ending(self) -> str:
        found = next((r for r in reversed(self.records) if r.get("type") == "ended"), None)
        return str(found.get("message")) if found else "(not ended: the app stopped)"

    def turns(self) -> list[dict[str, Any]]:
        """The lines to read, corrections applied to the agent's replies."""
        corrections = {
            r.get("event_id"): r.get("text")
            for r in self.records
            if r.get("type") == "correction" and r.get("event_id") is not None
        }
        shown: list[dict[str, Any]] = []
        for record in self.records:
            kind = record.get("type")
            if kind in ("start", "correction"):
                continue
            if kind == "agent" and record.get("event_id") in corrections:
                record = {**record, "text": corrections[record["event_id"]], "corrected": True}
            shown.append(record)
        return shown

    def text(self) -> str:
        """Every line of the conversation's words, for search."""
        return "\n".join(str(r.get("text") or r.get("result") or "") for r in self.records)


def read_entry(path: Path) -> HistoryEntry:
    entry = HistoryEntry(path.stem, path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise HistoryError(
            f"The conversation {path.stem} could not be read ({exc.strerror})."
        ) from None
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines) - 1:
                entry.damaged = True  # cut short mid-write: everything before it stands
                continue
            logger.warning("history %s: line %d is not JSON; skipped", path.name, number + 1)
            continue
        if isinstance(record, dict):
            entry.records.append(record)
    return entry


def list_entries(directory: Path, search: str | None = None) -> list[HistoryEntry]:
    """Every kept conversation, newest first (``search``: only those with the words)."""
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.glob(f"*{SUFFIX}"), reverse=True):
        with contextlib.suppress(HistoryError):
            entry = read_entry(path)
            if search and search.lower() not in entry.text().lower():
                continue
            entries.append(entry)
    return entries


def find_entry(directory: Path, entry_id: str) -> HistoryEntry:
    """The conversation ``entry_id`` (or a unique start of it)."""
    if not _ID.fullmatch(entry_id):
        raise HistoryError(f"{entry_id!r} is not a conversation of the history.")
    matches = list(directory.glob(f"{entry_id}*{SUFFIX}")) if directory.is_dir() else []
    if not matches:
        raise HistoryError(
            f"There is no conversation {entry_id!r} in the history (voicedesk history list)."
        )
    if len(matches) > 1:
        raise HistoryError(f"{entry_id!r} names {len(matches)} conversations: give more of it.")
    return read_entry(matches[0])


def delete_entry(directory: Path, entry_id: str) -> HistoryEntry:
    entry = find_entry(directory, entry_id)
    try:
        entry.path.unlink()
    except OSError as exc:
        raise HistoryError(
            f"The conversation {entry.id} could not be deleted ({exc.strerror})."
        ) from None
    return entry


def prune(directory: Path, keep_days: int, now: float | None = None) -> int:
    """Delete conversations older than ``keep_days``; how many went."""
    if keep_days <= 0 or not directory.is_dir():
        return 0
    cutoff = (now if now is not None else time.time()) - timedelta(days=keep_days).total_seconds()
    removed = 0
    for path in directory.glob(f"*{SUFFIX}"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def summary_line(entry: HistoryEntry) -> str:
    said = sum(1 for r in entry.records if r.get("type") in ("user", "agent"))
    damaged = " (cut short)" if entry.damaged else ""
    return f"{entry.id}  {entry.agent_id}  {said} turns  {entry.ending}{damaged}"


def to_markdown(entry: HistoryEntry) -> str:
    start = entry.start
    lines = [
        f"# Conversation {entry.conversation_id or entry.id}",
        "",
        f"- started: {entry.started_local}",
        f"- agent: {entry.agent_id} ({start.get('server', '?')}, {start.get('transport', '?')})",
        "",
    ]
    for record in entry.turns():
        kind = record.get("type")
        if kind == "user":
            lines.append(f"**You:** {record.get('text', '')}")
        elif kind == "context":
            lines.append(f"*Context sent:* {record.get('text', '')}")
        elif kind == "agent":
            corrected = " *(as heard)*" if record.get("corrected") else ""
            lines.append(f"**Agent:** {record.get('text', '')}{corrected}")
        elif kind in ("tool_call", "agent_tool_call"):
            params = json.dumps(record.get("parameters") or {}, ensure_ascii=False)
            lines.append(f"`{record.get('tool')}` called {params}")
        elif kind in ("tool_result", "agent_tool_result"):
            result = str(record.get("result"))
            if record.get("is_error"):
                lines.append(
                    f"`{record.get('tool')}` failed: {result.removeprefix(TOOL_FAILED_PREFIX)}"
                )
            else:
                lines.append(f"`{record.get('tool')}` -> {result}")
        elif kind == "mcp_tool":
            lines.append(f"`{record.get('tool')}` (MCP) {record.get('state')}")
        elif kind == "error":
            lines.append(f"> Error: {record.get('message')}")
        elif kind == "ended":
            lines.append(f"*{record.get('message')}*")
        lines.append("")
    if entry.damaged:
        lines.append("*(The record stops here: the app stopped while writing it.)*")
    return "\n".join(lines).rstrip() + "\n"


def to_json(entry: HistoryEntry) -> str:
    body = {
        "id": entry.id,
        "conversation_id": entry.conversation_id,
        "agent_id": entry.agent_id,
        "started_at": entry.started_at,
        "damaged": entry.damaged,
        "events": entry.turns(),
    }
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def iter_files(directory: Path) -> Iterator[Path]:
    """The history's files (for the secret checks of the tests)."""
    if directory.is_dir():
        yield from directory.glob(f"*{SUFFIX}")


__all__ = [
    "HistoryEntry",
    "HistoryError",
    "HistoryWriter",
    "Recollection",
    "delete_entry",
    "find_entry",
    "iter_files",
    "list_entries",
    "prune",
    "read_entry",
    "summary_line",
    "to_json",
    "to_markdown",
]
