"""One settings class for the whole service (environment variables GOVFAQ_*)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from faq.loader import CONTENT_DIR


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVFAQ_", extra="ignore")

    content_dir: Path = Field(CONTENT_DIR, description="Folder of FAQ content (faqs/, contacts.yaml, scenarios.yaml …)")
    sources_dir: Path | None = Field(
        None, description="Folder of the source documents answers cite; default: the copy shipped in faq/sources"
    )
    data_dir: Path = Field(Path("var"), description="Where the built index and the SQLite database live")
    host: str = Field("127.0.0.1", description="Address `govfaq serve` listens on")
    port: int = Field(8000, ge=1, le=65535, description="Port `govfaq serve` listens on")


@lru_cache
def get_settings() -> Settings:
    return Settings()
