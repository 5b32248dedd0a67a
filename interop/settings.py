"""Service settings: the only module that reads the environment.

Values come from environment variables (prefix-free, as twelve-factor deployments expect) or
from the command line, are parsed once at start-up and passed down typed.
"""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///" + str(Path("var") / "interop.sqlite3")


class Settings(BaseSettings):
    """Everything the service needs to know about its environment."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; sqlite:///path (embedded) or postgresql+psycopg://...",
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base URL partners reach the service at (e.g. https://interop.example.org); "
        "when unset, links are built from the request's own URL.",
    )
    default_page_size: int = Field(default=50, ge=1, le=1000)
    max_page_size: int = Field(default=1000, ge=1)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    auto_migrate: bool = Field(
        default=True, description="Bring the database schema up to date at start-up."
    )


def sqlalchemy_url(database_url: str) -> str:
    """Accept the URL forms operators write and name the driver this service ships with."""
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url.removeprefix(prefix)
    return database_url
