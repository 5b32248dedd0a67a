"""Exceptions the operator can act on, turned into one line and an exit code.

Usage errors (the command line or the input is wrong) exit 2, failures exit 1. The
translation imports nothing heavy: an exception is recognized by its class's module and name,
so a refusal from the store or the settings is described without loading either first.
Anything not listed here is a defect and keeps its traceback.
"""

import typer

from interop.cli.common import CliError

USAGE = 2
FAILURE = 1


def describe(error: BaseException) -> tuple[str, int] | None:
    """The line to print and the exit code, or None when the error is a defect."""
    if isinstance(error, CliError):
        return error.message, error.exit_code
    if isinstance(error, typer.TyperException):
        return _usage(error), error.exit_code
    if isinstance(error, typer.Abort):
        return "aborted", FAILURE
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__}
    for name, explain in _BY_CLASS:
        if name in names:
            return explain(error)
    return None


def _usage(error: typer.TyperException) -> str:
    """Typer's message, and for a usage error the help that shows the right usage."""
    message = error.format_message()
    context = getattr(error, "ctx", None)
    if message and error.exit_code == USAGE and context is not None:
        return f"{message} (see `{context.command_path} --help`)"
    return message


def _service(error: BaseException) -> tuple[str, int]:
    return str(getattr(error, "message", error)), USAGE


def _settings(error: BaseException) -> tuple[str, int]:
    problems = []
    for problem in getattr(error, "errors", list)():
        field = ".".join(str(part) for part in problem.get("loc", ())).upper()
        text = str(problem.get("msg", "")).removeprefix("Value error, ")
        problems.append(f"{field}: {text}" if field else text)
    return "configuration: " + "; ".join(problems or [str(error)]), USAGE


def _database_url(error: BaseException) -> tuple[str, int]:
    return (
        f"not a usable database URL ({_first_line(error)}): give sqlite:///path/to/file.sqlite3 "
        "or postgresql+psycopg://user@host/db in --database-url or DATABASE_URL",
        USAGE,
    )


def _database(error: BaseException) -> tuple[str, int]:
    original = getattr(error, "orig", None) or error
    return (
        f"cannot use the database: {_first_line(original)} "
        "(check --database-url or DATABASE_URL, and that the server is running)",
        FAILURE,
    )


def _os(error: BaseException) -> tuple[str, int]:
    assert isinstance(error, OSError)
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or error}{where}", FAILURE


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


_BY_CLASS = (
    ("interop.services.errors.ServiceError", _service),
    ("pydantic_core._pydantic_core.ValidationError", _settings),
    ("sqlalchemy.exc.ArgumentError", _database_url),
    ("sqlalchemy.exc.DBAPIError", _database),
    ("builtins.OSError", _os),
)
