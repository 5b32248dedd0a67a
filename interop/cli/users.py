"""Staff accounts."""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from interop.cli.common import CliError, DatabaseOption, RoleChoice, engine, settings

if TYPE_CHECKING:
    from interop.services.staff import StaffService

app = typer.Typer(help="Staff accounts.", no_args_is_help=True)

PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (for scripts).",
    ),
]


@app.command("add")
def add(
    username: str,
    role: Annotated[RoleChoice, typer.Option(help="The staff member's role.")],
    program: Annotated[
        list[str], typer.Option(help="Organization id of a program; repeatable.")
    ] = [],  # noqa: B006
    password_stdin: PasswordStdinOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Create a staff account; the password is asked for (or read with --password-stdin),
    never taken from the command line."""
    from interop.services.staff import Role
    from interop.store.fhirdates import now_ms

    staff = staff_service(database_url)
    password = _password(password_stdin, "Password")
    staff.add(username, password, Role(role.value), tuple(program), now_ms())
    typer.echo(f"added {username} ({role.value})")


@app.command("disable")
def disable(username: str, database_url: DatabaseOption = None) -> None:
    """Disable the account and end its sessions."""
    staff_service(database_url).set_enabled(username, False)
    typer.echo(f"disabled {username}")


@app.command("reset-password")
def reset_password(
    username: str, password_stdin: PasswordStdinOption = False, database_url: DatabaseOption = None
) -> None:
    """Set a new password (asked for), end the account's sessions and lift any lockout."""
    staff = staff_service(database_url)
    password = _password(password_stdin, "New password")
    staff.reset_password(username, password)
    typer.echo(f"reset the password of {username}")


def _password(from_stdin: bool, prompt: str) -> str:
    if not from_stdin:
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("--password-stdin read no password: pipe it in, e.g. `... < secret-file`", 2)
    return password


def staff_service(database_url: str | None) -> "StaffService":
    """The accounts service, without the web app (whose login policy reads the same settings)."""
    from datetime import timedelta

    from interop.services.staff import LoginPolicy, StaffService

    configured = settings(database_url)
    policy = LoginPolicy(
        max_failures=configured.login_max_failures,
        lockout=timedelta(minutes=configured.login_lockout_minutes),
        session_lifetime=timedelta(hours=configured.session_hours),
    )
    return StaffService(engine(database_url), policy)
