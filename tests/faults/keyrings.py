"""A keyring backend for the matrix's "locked keyring" case (``PYTHON_KEYRING_BACKEND=
tests.faults.keyrings.LockedKeyring``): a desktop keyring whose collection is locked
cannot exist on a headless CI machine, so this stands in for it at keyring's own
backend interface. "No keyring" needs no stand-in: keyring's ``fail.Keyring`` is it."""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked


class LockedKeyring(KeyringBackend):
    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("the collection is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("the collection is locked")
