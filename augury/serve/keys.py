"""API keys stored hashed: a key is shown once when it is made; the server keeps only its SHA-256.

    augury serve keys add alice --keys serve/keys.json      # prints the new key once
    store = KeyStore.load("serve/keys.json"); store.lookup("sk-augury-...")  -> "alice" or None

Keys are 32 random bytes, so a fast hash is enough (nothing to brute-force as with passwords); lookups compare
digests in constant time. The file is written atomically and holds `{"keys": [{"name", "sha256", "created"}]}`.
A running server reads the file again when it changes, so a key added or revoked takes effect at the next request
(a file that cannot be read then accepts no key until it can).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from augury.errors import UsageError
from augury.io import atomic_write_json, utc_now

KEY_PREFIX = "sk-augury-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    name: str
    sha256: str
    created: str


class KeyStore:
    """The API keys a server accepts, by the SHA-256 of each key."""

    def __init__(self, records: list[KeyRecord] | None = None, path: Path | None = None):
        self.records = list(records or [])
        self.path = path
        self._seen = _stamp(path)  # the file as it was when read, to notice a change

    @classmethod
    def load(cls, path: str | Path) -> KeyStore:
        path = Path(path)
        if not path.exists():
            return cls([], path)
        if not path.is_file():
            what = "a folder" if path.is_dir() else "not a regular file"
            raise UsageError(f"keys file {path} is {what}; --keys names a JSON file")
        seen = _stamp(path)  # before reading: a change made while it is read is noticed next time
        try:
            raw = json.loads(path.read_text())
            records = [KeyRecord(**r) for r in raw["keys"]]
        except OSError as err:
            raise UsageError(f"cannot read keys file {path}: {err.strerror or err}") from None
        except (ValueError, KeyError, TypeError) as err:
            raise UsageError(f"{path} is not an augury keys file: {err}") from None
        names = [r.name for r in records]
        if len(set(names)) != len(names):
            raise UsageError(f"{path} names a key twice")
        store = cls(records, path)
        store._seen = seen
        return store

    def add(self, name: str) -> str:
        """Make a key for `name`, store its hash, and return the key (the only time it is seen)."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"key name {name!r} must be letters, digits, '-' or '_'")
        if any(r.name == name for r in self.records):
            raise UsageError(f"a key named {name!r} exists already (revoke it first)")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.records.append(KeyRecord(name, hash_key(key), utc_now()))
        self.save()
        return key

    def revoke(self, name: str) -> None:
        if not any(r.name == name for r in self.records):
            raise UsageError(f"no key named {name!r}")
        self.records = [r for r in self.records if r.name != name]
        self.save()

    def save(self) -> None:
        if self.path is None:
            raise UsageError("this key store has no file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"keys": [asdict(r) for r in self.records]})
        except OSError as err:
            raise UsageError(f"cannot write keys file {self.path}: {err.strerror or err}") from None
        self._seen = _stamp(self.path)

    def refresh(self) -> None:
        """Read the file again if it changed since it was read (`augury serve keys add|revoke` while serving)."""
        if self.path is None or _stamp(self.path) == self._seen:
            return
        seen = _stamp(self.path)
        try:
            self.records = KeyStore.load(self.path).records
        except UsageError:  # fail closed: a keys file that cannot be read accepts no key
            self.records = []
        self._seen = seen

    def lookup(self, key: str) -> str | None:
        """The name of the key, or None when it is not one of ours (as the file says now)."""
        self.refresh()
        digest = hash_key(key)
        found = None
        for record in self.records:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(record.sha256, digest):
                found = record.name
        return found


def _stamp(path: Path | None) -> tuple | None:
    """What changes when the file is replaced or written (atomic writes replace it: a new inode)."""
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)
