"""The fault matrix's bookkeeping: its cases, what each recorded, the evidence kept for
the secrets check, and the descriptors and sockets a case must give back.

Each case (a test marked ``@pytest.mark.fault("name")``) gets a :class:`FaultCase`
through the ``fault`` fixture: it says when the fault was injected (:meth:`inject`),
what the user saw (:meth:`saw`, the exact text printed or shown) and what the app
printed or wrote (:meth:`keep`, and the test's settings, logs and history folders,
copied after the case). The results go to :func:`results_path` as JSON, one entry per
case: ``scripts/faults-table`` prints them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_ENV = "VOICEDESK_FAULTS_JSON"
EVIDENCE_ENV = "VOICEDESK_FAULTS_EVIDENCE"

#: A recognisable fake API key and signed-URL signature: every case that involves
#: authentication uses them, and the secrets check looks for them (and for every
#: signature the local agents gave out) in everything the app wrote or printed.
FAKE_API_KEY = "sk_faultmatrix7Q2vX9kLp4RtY8wZ3nB6"
FAKE_SIGNATURE = "sigFaultMatrix5Hn2Jq8Wd3Lk7Pz"
#: Every secret used in this run, for the final check (the key, the signature, and each
#: ``conversation_signature`` a local agent handed out).
SECRETS_USED: set[str] = {FAKE_API_KEY, FAKE_SIGNATURE}

#: The matrix, in the order the table prints it: (case, what is done).
CASES: tuple[tuple[str, str], ...] = (
    ("close 1000", "the server closes with 1000"),
    ("close 1002", "the server closes with 1002"),
    ("close 1008", "the server closes with 1008"),
    ("close 1011", "the server closes with 1011"),
    ("TCP close, no close frame", "the server's socket closes without a close frame"),
    ("TCP reset mid agent audio", "an RST while the agent's voice plays"),
    ("half-open connection", "the peer stops answering without closing"),
    ("metadata never sent", "the server accepts and never starts the conversation"),
    ("10,000 malformed frames", "a burst of malformed and unknown frames"),
    ("20 MB frame", "one text frame of 20 MB"),
    ("DNS failure", "the server's name does not resolve"),
    ("TLS handshake failure", "a self-signed certificate on the server"),
    ("signed URL 401", "the REST API answers 401"),
    ("signed URL 403", "the REST API answers 403"),
    ("signed URL 404", "the REST API answers 404"),
    ("signed URL 429", "429 twice (Retry-After), then a signed URL"),
    ("signed URL 429 for good", "429 on every try"),
    ("signed URL 500", "the REST API answers 500"),
    ("signed URL timeout", "the REST API never answers"),
    ("signed URL invalid JSON", "the REST API answers 200 with a body that is not JSON"),
    ("microphone vanishes", "the microphone disappears mid-call"),
    ("sound server restarts", "PulseAudio is killed and started again mid-call"),
    ("tool raises", "a client tool raises"),
    ("tool hangs", "a client tool runs past its timeout"),
    ("tool returns a non-string", "a client tool returns a dict"),
    ("no battery", "getBatteryLevel on a computer without one"),
    ("no controllable screen", "changeBrightness without a controllable screen"),
    ("no keyring", "--remember with no usable keyring"),
    ("locked keyring", "--remember with a locked keyring"),
    ("read-only settings directory", "--remember into a read-only folder"),
    ("full settings directory", "--remember into a full disk"),
    ("corrupted settings.json", "settings.json is not JSON"),
    ("history truncated mid-line", "the last history line was cut by a crash"),
)


def results_path() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or ROOT / "build" / "faults.json")


def evidence_dir() -> Path:
    """Where each case's output and files are kept for the secrets check."""
    return Path(os.environ.get(EVIDENCE_ENV) or ROOT / "build" / "faults-evidence")


def open_resources() -> tuple[int, int]:
    """This process's open descriptors and its TCP/UDP sockets."""
    import psutil

    me = psutil.Process()
    return me.num_fds(), len(me.net_connections(kind="inet"))


def keep_evidence(case: str, name: str, text: str) -> None:
    """Keep something the app printed (or showed) under the case's evidence folder."""
    folder = evidence_dir() / _slug(case)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("a", encoding="utf-8") as f:
        f.write(text)


def keep_files(case: str, *folders: Path) -> None:
    """Copy every file the app wrote under ``folders`` into the case's evidence."""
    target = evidence_dir() / _slug(case) / "files"
    for folder in folders:
        if folder.is_dir():
            shutil.copytree(folder, target / folder.name, dirs_exist_ok=True)


def _slug(case: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in case).strip("-").lower()


@dataclass
class FaultCase:
    """One case of the matrix while it runs."""

    name: str
    home: Path  # the test's own folder: settings, logs and history live under it
    started: float = field(default_factory=time.monotonic)
    injected_at: float | None = None
    recovered_at: float | None = None
    seen: list[str] = field(default_factory=list)
    baseline: tuple[int, int] = (0, 0)

    def inject(self) -> None:
        """The fault happens now: time to recover counts from here."""
        self.injected_at = time.monotonic()

    def saw(self, text: str) -> str:
        """The user saw ``text`` (exactly as shown): the case has recovered."""
        if self.recovered_at is None:
            self.recovered_at = time.monotonic()
        self.seen.append(text)
        return text

    def keep(self, name: str, text: str) -> None:
        keep_evidence(self.name, name, text)

    @property
    def recovery_s(self) -> float | None:
        if self.recovered_at is None:
            return None
        return self.recovered_at - (self.injected_at or self.started)


def record(case: FaultCase, passed: bool, failure: str | None) -> None:
    """Write the case's line of the matrix into :func:`results_path` (merged by case)."""
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        entries: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        entries = {}
    entries[case.name] = {
        "case": case.name,
        "saw": " / ".join(case.seen),
        "recovery_s": None if case.recovery_s is None else round(case.recovery_s, 3),
        "result": "pass" if passed else "FAIL",
        "failure": failure,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(entries, indent=2, ensure_ascii=False), encoding="utf-8")


def find_secrets(folder: Path, secrets: set[str]) -> list[str]:
    """Every ``file: secret`` where a secret (or its URL-encoded form) appears in a file
    under ``folder``, bytes as written."""
    from urllib.parse import quote

    needles = {s.encode() for s in secrets if s} | {quote(s).encode() for s in secrets if s}
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        found += [f"{path.relative_to(folder)}: {n.decode()}" for n in needles if n in data]
    return found
