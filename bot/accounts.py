"""Per-person staff accounts, their roles, and the audit log (issue 15, part 1).

Roles, each including the one before: `viewer` reads the staff pages,
`editor` also saves drafts, `approver` also publishes, reverts and reloads.

`govfaq staff add NAME --role editor` prints a one-time password
(secrets.token_urlsafe). It opens one session only, whose every page leads to
the password form until the person has chosen a password of their own: the
printed text, which passed through a terminal and maybe a chat message, never
stays a working password. Passwords are kept as argon2id hashes (argon2-cffi).
A disabled account loses its open sessions at once: the role is read from
this file on every request, never copied into the session.

Everything that changes something is one row of the audit log: who, what,
when, and the FAQ it was about. The accounts and the log live in
GOVFAQ_DATA_DIR/staff.sqlite3, beside the conversations, so every worker
sees the same accounts, or in PostgreSQL with GOVFAQ_DATABASE_URL, so every
instance does (bot/storage.py); unlike the conversations these are not
optional: an account check that cannot read its database refuses the login.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .storage import Database, SqliteDatabase, database_for

ROLES = ("viewer", "editor", "approver")
NAME_PATTERN = r"[a-z][a-z0-9._-]{1,39}"
MIN_PASSWORD = 12
BUSY_MS = 5000  # staff wait up to 5 s for another worker's write rather than see an error
# Who the shared token logs in as while there is no account yet (web/staff.py).
BOOTSTRAP = "token"

SCHEMA = """
CREATE TABLE IF NOT EXISTS staff_accounts (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,    -- argon2id
    must_change INTEGER NOT NULL,   -- 1 while the password is the printed one-time password
    disabled INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staff_session_owner (
    id_hash TEXT PRIMARY KEY,       -- sha256 of the session cookie, as in staff_sessions
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    ts TEXT NOT NULL,               -- UTC, ISO 8601
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    faq_id TEXT,
    detail TEXT
);
"""


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    must_change: bool
    disabled: bool
    created: str

    def can(self, role: str) -> bool:
        return not self.disabled and ROLES.index(self.role) >= ROLES.index(role)


class AccountError(ValueError):
    """A refused change, with a message for staff in Japanese."""


def session_key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class Accounts:
    def __init__(self, store: Path | str | Database):
        # A path is a SQLite file of its own; accounts_store(settings) gives PostgreSQL when configured.
        self.db: Database = SqliteDatabase(store, SCHEMA) if isinstance(store, (str, Path)) else store
        self._hasher = PasswordHasher()
        # A hash to verify against for unknown names, so a wrong name costs as long as a wrong password.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def _run(self, fn, write: bool = True):
        # No fallback: an error here reaches the caller, and a login it was checking is refused.
        with self.db.transaction(BUSY_MS, write=write) as tx:
            return fn(tx)

    # ------------------------------------------------------------ accounts
    def any(self) -> bool:
        if not self.db.exists():  # a SQLite file not created yet holds no account: do not create it to ask
            return False
        return bool(self._run(lambda c: c.execute("SELECT 1 AS one FROM staff_accounts LIMIT 1").fetchone(), write=False))

    def add(self, name: str, role: str, by: str = "cli") -> str:
        """Create `name` with `role`; returns the one-time password (shown once, never stored)."""
        if not re.fullmatch(NAME_PATTERN, name) or name == BOOTSTRAP:
            raise AccountError(f"名前 {name!r} は使えません（半角英小文字で始まる2〜40文字: a-z 0-9 . _ -）")
        if role not in ROLES:
            raise AccountError(f"役割 {role!r} はありません（{' / '.join(ROLES)}）")
        password = secrets.token_urlsafe(18)
        hashed = self._hasher.hash(password)

        def insert(conn):
            try:
                conn.execute(
                    "INSERT INTO staff_accounts (name, role, password_hash, must_change, created) VALUES (?, ?, ?, 1, ?)",
                    (name, role, hashed, _now()),
                )
            except self.db.integrity_error:
                raise AccountError(f"{name} はすでにあります") from None
        self._run(insert)
        self.audit(by, "account added", detail=f"{name} ({role})")
        return password

    def get(self, name: str) -> Account | None:
        row = self._run(lambda c: c.execute("SELECT * FROM staff_accounts WHERE name = ?", (name,)).fetchone(), write=False)
        if row is None:
            return None
        return Account(row["name"], row["role"], bool(row["must_change"]), bool(row["disabled"]), row["created"])

    def list(self) -> list[Account]:
        rows = self._run(lambda c: c.execute("SELECT * FROM staff_accounts ORDER BY name").fetchall(), write=False)
        return [Account(r["name"], r["role"], bool(r["must_change"]), bool(r["disabled"]), r["created"]) for r in rows]

    def disable(self, name: str, by: str = "cli") -> None:
        def update(conn):
            if conn.execute("UPDATE staff_accounts SET disabled = 1 WHERE name = ?", (name,)).rowcount == 0:
                raise AccountError(f"{name} というアカウントはありません")
            conn.execute("DELETE FROM staff_session_owner WHERE name = ?", (name,))
        self._run(update)
        self.audit(by, "account disabled", detail=name)

    def verify(self, name: str, password: str) -> Account | None:
        """The account if `password` is its password and it is not disabled; None otherwise."""
        row = self._run(lambda c: c.execute(
            "SELECT password_hash, disabled FROM staff_accounts WHERE name = ?", (name,)).fetchone(), write=False)
        try:
            self._hasher.verify(row["password_hash"] if row else self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or row["disabled"]:
            return None
        return self.get(name)

    def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"パスワードは{MIN_PASSWORD}文字以上にしてください")
        from bot.settings import token_weakness

        weakness = token_weakness(password) if len(password) >= 16 else None
        if weakness:
            raise AccountError("このパスワードは推測されやすいため使えません。別のパスワードにしてください")
        hashed = self._hasher.hash(password)
        self._run(lambda c: c.execute(
            "UPDATE staff_accounts SET password_hash = ?, must_change = 0 WHERE name = ?", (hashed, name)))
        self.audit(name, "password set")

    # ------------------------------------------------------------ sessions
    def own(self, sid: str, name: str) -> None:
        self._run(lambda c: c.execute(
            "INSERT INTO staff_session_owner (id_hash, name) VALUES (?, ?) "
            "ON CONFLICT (id_hash) DO UPDATE SET name = excluded.name", (session_key(sid), name)))

    def owner(self, sid: str) -> str | None:
        row = self._run(lambda c: c.execute(
            "SELECT name FROM staff_session_owner WHERE id_hash = ?", (session_key(sid),)).fetchone(), write=False)
        return row["name"] if row else None

    def disown(self, sid: str) -> None:
        self._run(lambda c: c.execute("DELETE FROM staff_session_owner WHERE id_hash = ?", (session_key(sid),)))

    # ------------------------------------------------------------ audit log
    def audit(self, who: str, action: str, faq_id: str | None = None, detail: str | None = None) -> None:
        self._run(lambda c: c.execute(
            "INSERT INTO audit_log (ts, who, action, faq_id, detail) VALUES (?, ?, ?, ?, ?)",
            (_now(), who, action, faq_id, detail)))

    def audit_rows(self, limit: int = 200) -> list[dict]:
        rows = self._run(lambda c: c.execute(
            "SELECT ts, who, action, faq_id, detail FROM audit_log ORDER BY rowid DESC LIMIT ?", (limit,)).fetchall(),
            write=False)
        return [dict(r) for r in rows]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def accounts_path(settings) -> Path:
    return Path(settings.data_dir) / "staff.sqlite3"


def accounts_store(settings) -> Database:
    """The staff accounts' database: PostgreSQL with GOVFAQ_DATABASE_URL, else GOVFAQ_DATA_DIR/staff.sqlite3."""
    return database_for(settings, accounts_path(settings).name, SCHEMA)
