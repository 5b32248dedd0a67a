"""Service settings: the only module that reads the environment.

Values come from environment variables (prefix-free, as twelve-factor deployments expect) or
from the command line, are parsed once at start-up and passed down typed.
"""

import contextlib
import os
import secrets
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
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
    intermediary_organization: str | None = Field(
        default=None,
        pattern=r"^Organization/[A-Za-z0-9\-.]{1,64}$",
        description="The stored Organization this service is when a consent names it as an "
        "intermediary (42 CFR §2.31(a)(4)(ii)): disclosures then pass through it to its member "
        "participants, and a general designation reaches only those with a treating provider "
        "relationship with the patient. Unset: this service never acts as an intermediary.",
    )
    default_page_size: int = Field(default=50, ge=1, le=1000)
    max_page_size: int = Field(default=1000, ge=1)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    auto_migrate: bool = Field(
        default=True, description="Bring the database schema up to date at start-up."
    )
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production refuses generated secrets and insecure cookies.",
    )
    token_signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key (32+ bytes) signing access tokens; shared by every API process. "
        "In development a random key is generated at start-up.",
    )
    audit_chain_key: SecretStr | None = Field(
        default=None,
        description="HMAC key (32+ bytes) keying the disclosure log's hash chain; keep it "
        "outside the database. In development it is kept in AUDIT_CHAIN_KEY_FILE.",
    )
    audit_chain_key_file: Path = Field(
        default=Path("var/audit-chain.key"),
        description="Development only: where the generated chain key is kept (mode 0600).",
    )
    access_token_seconds: int = Field(default=300, ge=30, le=3600)
    assertion_max_lifetime_seconds: int = Field(
        default=300, description="SMART Backend Services: exp at most 5 minutes ahead."
    )
    jwks_cache_seconds: int = Field(default=300, ge=0)
    session_hours: int = Field(default=8, ge=1, le=24)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    document_oid_root: str = Field(
        default="2.16.840.1.113883.3.9999",
        description="The OID under which documents this service writes get their ids; "
        "set it to the deployment's own OID (the default is an example arc).",
    )
    oidc_issuer: str | None = Field(
        default=None, description="OpenID Connect provider for staff login (discovery URL base)."
    )
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    sync_signing_key_file: Path | None = Field(
        default=None,
        description="PEM private key (RSA or EC P-384) signing our client assertions at "
        "partners' token endpoints; its public half is served at /auth/jwks.json.",
    )
    sync_signing_kid: str = Field(default="recovery-interop-sync-1", max_length=200)
    sync_max_attempts: int = Field(default=12, ge=1, description="Then a delivery has failed.")
    sync_backoff_seconds: float = Field(default=30.0, gt=0)
    sync_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    sync_lease_seconds: int = Field(
        default=300, ge=10, description="A claimed delivery is taken again after this long."
    )
    sync_timeout_seconds: float = Field(default=15.0, gt=0)
    subscription_private_endpoints: bool = Field(
        default=False,
        description="Let partners' Subscriptions notify loopback, private or link-local "
        "addresses other than their registered channel's host (a test bed on one network); "
        "off, such an endpoint is refused at sending (server-side request forgery).",
    )
    sync_concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Deliveries one dispatcher makes at once, each of a different resource "
        "(the changes of one resource to one partner stay in order).",
    )
    sync_batch: int = Field(
        default=10,
        ge=1,
        le=50,
        description="Changes to one partner's FHIR server a dispatcher sends in one transaction "
        "(each still its own delivery, recorded and retried on its own; 1: one each).",
    )
    request_threads: int = Field(
        default=8,
        ge=1,
        le=200,
        description="Requests whose blocking work (database, gate) runs at once. Threads beyond "
        "the cores and the database pool only contend: on 2 cores, 4 to 8 served about 1.6 "
        "times the reads per second of AnyIO's default 40 (bench/reads.py).",
    )
    export_worker: bool = Field(
        default=True,
        description="Run Bulk Data $export jobs in this process (a background worker started "
        "with the app; it resumes queued and interrupted jobs at start-up).",
    )
    export_page_size: int = Field(
        default=1000, ge=1, le=5000, description="Resources read and gated per export page."
    )
    export_retention_hours: float = Field(
        default=24.0, gt=0, description="How long a finished export's files are kept (Expires)."
    )
    export_lease_seconds: int = Field(
        default=60, ge=5, description="A running export whose worker is silent this long resumes."
    )
    export_poll_seconds: float = Field(
        default=2.0, gt=0, description="Retry-After for status polls; the worker's idle rest."
    )

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Self:
        """Outside development a missing or short signing key is a configuration error."""
        key = self.token_signing_key
        if self.environment == "production" and (key is None or len(key.get_secret_value()) < 32):
            raise ValueError(
                "TOKEN_SIGNING_KEY of at least 32 characters is required in production: "
                "set it (e.g. to the output of `openssl rand -base64 48`) on every API process"
            )
        chain = self.audit_chain_key
        if self.environment == "production" and (
            chain is None or len(chain.get_secret_value()) < 32
        ):
            raise ValueError("AUDIT_CHAIN_KEY of at least 32 characters is required in production")
        return self

    def chain_key(self) -> bytes:
        """The disclosure log's key: AUDIT_CHAIN_KEY, or in development one generated once and
        kept in AUDIT_CHAIN_KEY_FILE, so every process of this installation shares it."""
        if self.audit_chain_key is not None:
            return self.audit_chain_key.get_secret_value().encode()
        path = self.audit_chain_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as file:
                    file.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    def signing_key(self) -> bytes:
        """The access-token key; development without one gets a per-process random key."""
        if self.token_signing_key is not None:
            return self.token_signing_key.get_secret_value().encode()
        return _DEVELOPMENT_KEY

    @property
    def secure_cookies(self) -> bool:
        return self.environment == "production"


_DEVELOPMENT_KEY = secrets.token_bytes(32)


def sqlalchemy_url(database_url: str) -> str:
    """Accept the URL forms operators write and name the driver this service ships with."""
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url.removeprefix(prefix)
    return database_url
