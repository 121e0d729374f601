"""Secrets stay secret under faults (issue 14, part 5).

Every fault case keeps what the app printed (console lines, a process's stdout and
stderr) and every file it wrote (settings, logs, history, a damaged settings file) in
the evidence folder (:func:`matrix.evidence_dir`); the soak adds its own. After every
other test of the session (``after_everything``: the fault conftest moves it last),
the check reads it all for the matrix's fake API key and for every signed-URL
signature handed out: none may be there. The check itself is shown to catch a key.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.faults import matrix


def test_the_check_finds_a_planted_key_and_signature(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "voicedesk.log").write_text(
        f"INFO connecting with xi-api-key {matrix.FAKE_API_KEY}\n"
    )
    (tmp_path / "history.jsonl").write_bytes(
        f'{{"url": "ws://h/c?conversation_signature={quote(matrix.FAKE_SIGNATURE)}"}}\n'.encode()
    )
    (tmp_path / "clean.txt").write_text("Agent: Hello!\n")
    secrets = {matrix.FAKE_API_KEY, matrix.FAKE_SIGNATURE}
    assert matrix.find_secrets(tmp_path, secrets) == [
        f"history.jsonl: {matrix.FAKE_SIGNATURE}",
        f"logs/voicedesk.log: {matrix.FAKE_API_KEY}",
    ]
    (tmp_path / "logs" / "voicedesk.log").write_text("INFO connecting with [redacted]\n")
    (tmp_path / "history.jsonl").write_text("{}\n")
    assert matrix.find_secrets(tmp_path, secrets) == []


@pytest.mark.after_everything
def test_no_secret_in_anything_the_app_wrote_or_printed() -> None:
    evidence = matrix.evidence_dir()
    kept = [p for p in evidence.rglob("*") if p.is_file()] if evidence.is_dir() else []
    if not kept:
        pytest.skip("no fault case (nor the soak) ran in this session: nothing to search")
    found = matrix.find_secrets(evidence, matrix.SECRETS_USED)
    assert not found, f"secrets in what the app wrote or printed ({evidence}): {found}"
    cases = {p.name for p in evidence.iterdir()}
    print(
        f"secrets check: {len(kept)} files of {len(cases)} cases searched for "
        f"{len(matrix.SECRETS_USED)} secrets (the API key and signatures): none found"
    )
