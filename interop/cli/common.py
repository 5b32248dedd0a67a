"""What every command shares: options, settings, the database, and one-line failures.

Nothing here imports the web app, the store or the services at module level: `interop --help`
and the commands that need none of them stay fast. The heavy modules are imported by the
functions that need them.
"""

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from interop.settings import Settings

DEFAULT_ROOT = "http://127.0.0.1:8080"

DatabaseOption = Annotated[
    str | None,
    typer.Option(help="Database URL (default: DATABASE_URL or SQLite under ./var/)."),
]


class ChannelChoice(StrEnum):
    """interop.services.outbox.ChannelKind's values, without importing the outbox to list them
    (tests/e2e/test_cli.py holds the two equal)."""

    NONE = "none"
    FHIR = "fhir"
    CCDA_HTTP = "ccda-http"
    CCDA_DIRECTORY = "ccda-directory"
    HL7V2_MLLP = "hl7v2-mllp"


class RoleChoice(StrEnum):
    """interop.services.staff.Role's values (tests/e2e/test_cli.py holds the two equal)."""

    CASE_MANAGER = "case-manager"
    COMPLIANCE_OFFICER = "compliance-officer"
    ADMINISTRATOR = "administrator"


class AlgorithmChoice(StrEnum):
    """The client assertion algorithms SMART Backend Services names."""

    RS384 = "RS384"
    ES384 = "ES384"


class CliError(Exception):
    """A failure the operator can fix: one line naming what is wrong and how to fix it.

    `exit_code` is 2 for usage errors (the input is wrong) and 1 for failures."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def settings(database_url: str | None = None, **overrides: Any) -> "Settings":
    """The settings from the environment, with what the command line overrides."""
    from interop.settings import Settings

    if database_url is not None:
        overrides["database_url"] = database_url
    return Settings(**overrides)


def public_root(configured: "Settings") -> str:
    """Where partners and browsers reach the server: PUBLIC_BASE_URL, else the default port."""
    return (configured.public_base_url or DEFAULT_ROOT).rstrip("/")


def engine(database_url: str | None) -> "Engine":
    """An engine over the configured database, its schema brought up to date."""
    from interop.store.database import make_engine
    from interop.store.migrate import upgrade

    configured = settings(database_url)
    url = configured.database_url
    check_database_url(url)
    made = make_engine(url, chain_key=configured.chain_key())
    upgrade(made)
    return made


def check_database_url(url: str) -> None:
    """Only the two backends this service ships drivers for; anything else is refused in one
    line before SQLAlchemy goes looking for a driver."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from interop.settings import sqlalchemy_url

    fix = "give sqlite:///path/to/file.sqlite3 or postgresql://user@host/db in --database-url"
    if not sqlalchemy_url(url).startswith(("sqlite://", "postgresql+psycopg://")):
        scheme = url.partition("://")[0][:30] if "://" in url else "no scheme"
        raise CliError(f"unsupported database URL ({scheme}): {fix} or DATABASE_URL", 2)
    try:
        make_url(sqlalchemy_url(url)).port  # noqa: B018  (parsing the port is the check)
    except (ArgumentError, ValueError) as error:
        raise CliError(f"not a usable database URL ({error}): {fix} or DATABASE_URL", 2) from None


def existing_engine(database_url: str | None) -> "Engine":
    """An engine over a database that must already exist: an embedded SQLite file that is not
    there is refused rather than created empty (a mistyped path must not look intact)."""
    url = settings(database_url).database_url
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise CliError(
            f"no database at {path}: check --database-url or DATABASE_URL "
            "(this command never creates one)"
        )
    return engine(database_url)


def sqlite_path(url: str) -> Path | None:
    """The file of an embedded SQLite URL; None for in-memory and server databases."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?")[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def print_json(value: object) -> None:
    import orjson

    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def read_file(path: Path, what: str, hint: str) -> bytes:
    """A file's bytes, or one line saying which file could not be read and what to give."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{what} {path} does not exist: {hint}", 2) from None
    except IsADirectoryError:
        raise CliError(f"{what} {path} is a directory: {hint}", 2) from None
    except OSError as error:
        raise CliError(f"cannot read {what} {path}: {error.strerror}", 1) from None
