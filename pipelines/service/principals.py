"""API keys -> principals: the keys file (`german-rag keys add/list/revoke`) and the env shortcut keys.

A key written by `keys add` reads `grk_<id>_<secret>`: the id (8 hex digits, shown by `keys list`, not a
secret) picks the file's entry, so one request costs one key derivation, not one per stored key. The file
keeps per key its principal (tenant, groups, role), a random salt and scrypt(secret, salt); the secret
itself is printed once and stored nowhere. Several keys may name the same principal (rotation: add the
new key, move clients over, revoke the old one).

`GERMAN_RAG_READ_KEYS` / `WRITE_KEYS` stay a shortcut for one tenant: their keys are tenant `default`,
role read or write, no groups. Both sources may be set together.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import tomllib
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ingest.errors import ConfigError, UsageError
from ingest.schema import DEFAULT_TENANT, AccessError
from ingest.store.access import Principal
from pipelines.logs import audit as log_audit
from pipelines.service.http import Forbidden, InvalidKey, KeyRing, Misconfigured, MissingKey

log = logging.getLogger(__name__)
KEY_PREFIX = "grk_"
KEY_RE = re.compile(rb"^grk_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})$")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # about 45 ms and 16 MiB per derivation on a 2-core EPYC
CACHE_SIZE = 4096  # resolved keys remembered (by an HMAC of the key under a per-process secret)
FILE_HEADER = ("# german-rag API keys: written by `german-rag keys add`, `keys revoke`. Only salted scrypt\n"
               "# hashes are kept here; a key is shown once, when it is made.\n")


@dataclass(frozen=True)
class KeyRecord:
    """One stored key: who it acts as, and how to check it (salt and hash, never the key)."""

    key_id: str
    name: str
    tenant: str
    groups: tuple[str, ...]
    role: str
    created: str
    salt: str  # hex
    hash: str  # hex of scrypt(secret, salt, n, r, p)
    n: int = SCRYPT["n"]
    r: int = SCRYPT["r"]
    p: int = SCRYPT["p"]

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant, frozenset(self.groups), self.role)

    def public(self) -> dict:
        """What `keys list` shows: no salt, no hash."""
        return {"key_id": self.key_id, "name": self.name, "tenant": self.tenant, "groups": list(self.groups),
                "role": self.role, "created": self.created}

    def matches(self, secret: bytes) -> bool:
        derived = hashlib.scrypt(secret, salt=bytes.fromhex(self.salt), n=self.n, r=self.r, p=self.p, dklen=32)
        return hmac.compare_digest(derived, bytes.fromhex(self.hash))


@dataclass(frozen=True)
class Caller:
    """The principal a request acts for and a label of its key for the audit log (never the key)."""

    principal: Principal
    key: str


def new_key(tenant: str, groups: tuple[str, ...], role: str, name: str, taken: set[str]) -> tuple[str, KeyRecord]:
    """A fresh random key and its record (the key is returned once and kept nowhere)."""
    Principal(tenant, frozenset(groups), role)  # the tenant, group and role rules, before anything is made
    if not name.strip() or len(name) > 100 or not name.isprintable():
        raise UsageError(f"key name {name!r}: use 1-100 printable characters")
    key_id = secrets.token_hex(4)
    while key_id in taken:
        key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **SCRYPT)
    record = KeyRecord(key_id, name.strip(), tenant, tuple(sorted(set(groups))), role,
                       datetime.now(UTC).isoformat(timespec="seconds"), salt.hex(), digest.hex())
    return f"{KEY_PREFIX}{key_id}_{secret}", record


# -- the file --------------------------------------------------------------------------------------------
def load_keys(path: str | Path) -> list[KeyRecord]:
    """Every key of the file (a missing file has none); a broken file or entry is a ConfigError naming it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"keys file {path}: cannot be read: {exc}") from exc
    entries = data.get("key", [])
    if not isinstance(entries, list):
        raise ConfigError(f"keys file {path}: `key` must be an array of tables ([[key]])")
    records = [_record(path, i, entry) for i, entry in enumerate(entries)]
    ids = [r.key_id for r in records]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"keys file {path}: a key id appears twice")
    return records


def _record(path: Path, index: int, entry: object) -> KeyRecord:
    where = f"keys file {path}, key #{index + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: not a table")
    try:
        record = KeyRecord(key_id=entry["id"], name=entry.get("name", ""), tenant=entry["tenant"],
                           groups=tuple(entry.get("groups", ())), role=entry["role"],
                           created=str(entry.get("created", "")), salt=entry["salt"], hash=entry["hash"],
                           n=int(entry.get("n", SCRYPT["n"])), r=int(entry.get("r", SCRYPT["r"])),
                           p=int(entry.get("p", SCRYPT["p"])))
        if not re.fullmatch(r"[0-9a-f]{8}", record.key_id):
            raise ValueError(f"id {record.key_id!r} is not 8 hex digits")
        if len(bytes.fromhex(record.salt)) < 16 or len(bytes.fromhex(record.hash)) != 32:
            raise ValueError("salt and hash must be hex of 16+ and 32 bytes")
        Principal(record.tenant, frozenset(record.groups), record.role)  # the tenant, group and role rules
    except KeyError as exc:
        raise ConfigError(f"{where}: field {exc.args[0]!r} is missing") from exc
    except (AccessError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return record


def save_keys(path: str | Path, records: list[KeyRecord]) -> None:
    """Write the file whole: a temporary file of mode 0600 beside it, then a rename (no reader sees half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = FILE_HEADER + "".join(_toml(r) for r in records)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _toml(record: KeyRecord) -> str:
    def s(value: str) -> str:  # a TOML basic string: JSON's escapes are TOML's
        return json.dumps(value, ensure_ascii=False)

    d = asdict(record)
    groups = ", ".join(s(g) for g in record.groups)
    return (f"\n[[key]]\nid = {s(record.key_id)}\nname = {s(record.name)}\ntenant = {s(record.tenant)}\n"
            f"groups = [{groups}]\nrole = {s(record.role)}\ncreated = {s(record.created)}\n"
            f"salt = {s(record.salt)}\nhash = {s(record.hash)}\nn = {d['n']}\nr = {d['r']}\np = {d['p']}\n")


def add_key(path: str | Path, tenant: str, groups: tuple[str, ...], role: str,
            name: str | None = None) -> tuple[str, KeyRecord]:
    """Make a key, store its hash; returns (the key, shown once; its record)."""
    records = load_keys(path)
    secret, record = new_key(tenant, groups, role, name or f"{tenant}-{role}", {r.key_id for r in records})
    save_keys(path, [*records, record])
    return secret, record


def revoke_key(path: str | Path, key_id: str) -> KeyRecord:
    records = load_keys(path)
    gone = [r for r in records if r.key_id == key_id]
    if not gone:
        raise UsageError(f"keys file {path}: no key with id {key_id!r} (see `german-rag keys list`)")
    save_keys(path, [r for r in records if r.key_id != key_id])
    return gone[0]


# -- the service's side ------------------------------------------------------------------------------------
class KeysFile:
    """The keys file as the service reads it: read again when it changes (a revoked key stops working at the
    next request), resolved keys remembered by an HMAC under a per-process secret."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._loaded = False
        self._by_id: dict[str, KeyRecord] = {}
        self._cache: OrderedDict[bytes, Caller | None] = OrderedDict()
        self._pepper = secrets.token_bytes(32)
        load_keys(self.path)  # at start, a broken file is a ConfigError that names what is wrong
        self._dummy = KeyRecord("00000000", "", DEFAULT_TENANT, (), "read", "", "00" * 16, "00" * 32)
        self.refresh()

    def refresh(self) -> None:
        """Read the file again if it changed. A file that became unreadable fails closed: every request
        that needs a key is 503 until it is fixed (the old keys may include revoked ones)."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if self._loaded and stamp == self._stamp:
                return
            try:
                records = load_keys(self.path)
            except ConfigError as exc:
                self._by_id, self._loaded = {}, False
                self._cache.clear()
                log.error("keys file cannot be read: refusing keyed requests", extra={"error": str(exc)})
                raise Misconfigured("the service's keys file cannot be read; see the service log") from exc
            self._by_id, self._stamp, self._loaded = {r.key_id: r for r in records}, stamp, True
            self._cache.clear()
        if stamp is None:
            log.warning("keys file does not exist: no key of it is accepted", extra={"keys_file": str(self.path)})

    def cached(self, token: bytes) -> Caller | Literal[False] | None:
        """The remembered answer for `token`, or False when it must be resolved (a key derivation)."""
        self.refresh()
        with self._lock:
            return self._cache.get(self._mac(token), False)

    def resolve(self, token: bytes) -> Caller | None:
        """The caller a `grk_` key stands for, or None. An unknown id costs the same derivation as a known one."""
        found = KEY_RE.match(token)
        if found is None:
            return None
        self.refresh()
        record = self._by_id.get(found.group(1).decode())
        ok = (record or self._dummy).matches(found.group(2))
        caller = Caller(record.principal, f"file:{record.key_id}:{record.name}") if ok and record else None
        with self._lock:
            self._cache[self._mac(token)] = caller
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return caller

    def _mac(self, token: bytes) -> bytes:
        return hmac.new(self._pepper, token, hashlib.sha256).digest()


class Principals:
    """Who a request is: keys of the env shortcut (tenant `default`) and of the keys file. With neither set,
    every request acts as `anonymous` (the settings' principal: the local owner unless a tenant is set)."""

    def __init__(self, ring: KeyRing, keys_file: KeysFile | None, anonymous: Principal) -> None:
        self.ring, self.file, self.anonymous = ring, keys_file, anonymous

    @property
    def enabled(self) -> bool:
        """Keys are required: env keys are set, or a keys file is named (even one without keys yet)."""
        return self.ring.enabled or self.file is not None

    def cached(self, token: bytes) -> Caller | Literal[False] | None:
        """The caller known without a key derivation (an env key, a remembered file key), None, or False
        when the keys file must derive it (`resolve`, off the event loop)."""
        role = self.ring.role_of(token)
        if role is not None:
            return Caller(Principal(DEFAULT_TENANT, frozenset(), role), f"env:{role}")
        return None if self.file is None else self.file.cached(token)

    def resolve(self, token: bytes) -> Caller | None:
        caller = self.cached(token)
        if caller is False:
            assert self.file is not None
            return self.file.resolve(token)
        return caller if isinstance(caller, Caller) else None

    def check(self, caller: Caller | None, token: bytes | None, scope: str | None) -> Caller | None:
        """The caller of a request that needs `scope` (None: an open path, where a valid key only adds
        details). Raises Unauthorized (no or an unknown key) or Forbidden (a read key where writing is needed)."""
        if not self.enabled:
            return Caller(self.anonymous, "none")
        if scope is None:
            return caller
        if caller is None:
            challenge = {"WWW-Authenticate": "Bearer"}
            if token is None:
                raise MissingKey("missing API key: send 'Authorization: Bearer KEY'", challenge)
            raise InvalidKey("invalid API key", challenge)
        if scope == "write" and not caller.principal.may_write():
            raise Forbidden("this API key may only read; uploads and deletes need a write key")
        return caller


def audit(caller: Caller, action: str, **fields: object) -> None:
    """One structured line per write or delete: who (tenant, key label), what, on which source or doc id, counts."""
    log_audit(action, caller.principal.tenant, caller.key, **fields)
