"""Staff accounts."""

import re
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from interop.cli.common import CliError, DatabaseOption, RoleChoice, engine, settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from interop.services.staff import StaffService

app = typer.Typer(help="Staff accounts.", no_args_is_help=True)

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
"""What a sign-in name may be: typed into the login form or sent as an OpenID Connect
provider's preferred_username or email (casey.manager, demo.harbor-detox, jo@example.org)."""

PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (for scripts).",
    ),
]


@app.command("add")
def add(
    username: Annotated[
        str, typer.Argument(help="Sign-in name: letters, digits and . _ - @ + (1-128).")
    ],
    role: Annotated[RoleChoice, typer.Option(help="The staff member's role.")],
    program: Annotated[
        list[str],
        typer.Option(
            help="Organization id of a stored program, e.g. harbor-detox; repeatable, and "
            "required for a case manager."
        ),
    ] = [],  # noqa: B006
    password_stdin: PasswordStdinOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Create a staff account; the password is asked for (or read with --password-stdin),
    never taken from the command line."""
    from interop.services.staff import Role
    from interop.store.fhirdates import now_ms

    username = check_username(username)
    programs = program_ids(role, program)
    made = engine(database_url)
    check_programs_stored(made, programs)
    staff = staff_service(database_url, made)
    password = _password(password_stdin, "Password")
    staff.add(username, password, Role(role.value), programs, now_ms())
    typer.echo(f"added {username} ({role.value})")


def check_username(text: str) -> str:
    """The name as typed, without surrounding whitespace; refused (before the password is
    asked for) unless it is one the login form and an OpenID Connect provider can send."""
    username = text.strip()
    if not USERNAME.fullmatch(username):
        raise CliError(
            f"{text[:80]!r} is not a username: use 1-128 letters, digits and . _ - @ + "
            "starting with a letter or digit (e.g. casey.manager)",
            2,
        )
    return username


def program_ids(role: RoleChoice, given: list[str]) -> tuple[str, ...]:
    """The programs as Organization ids, once each. A case manager works for at least one
    (what they record, consents above all, is made in a program's name)."""
    programs = tuple(dict.fromkeys(text.strip().removeprefix("Organization/") for text in given))
    if "" in programs:
        raise CliError("--program is blank: give a program's Organization id, e.g. harbor-detox", 2)
    if role is RoleChoice.CASE_MANAGER and not programs:
        raise CliError(
            "a case manager needs --program ID (the Organization id of the program they "
            "work for, e.g. harbor-detox)",
            2,
        )
    return programs


def check_programs_stored(engine: "Engine", programs: tuple[str, ...]) -> None:
    """Every --program names an Organization stored here, so that a typo does not make an
    account whose records belong to no program."""
    from interop.store.database import unit_of_work
    from interop.store.organizations import known_organizations

    if not programs:
        return
    with unit_of_work(engine, writes=False) as session:
        known = known_organizations(session)
    for program in programs:
        if f"Organization/{program}" not in known:
            raise CliError(
                f"no program Organization/{program[:80]} is stored: give the id of a stored "
                "Organization (`interop partners list` shows the registered ones)",
                2,
            )


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


def staff_service(database_url: str | None, made: "Engine | None" = None) -> "StaffService":
    """The accounts service, without the web app (whose login policy reads the same settings);
    over `made` when the caller has the engine already."""
    from datetime import timedelta

    from interop.services.staff import LoginPolicy, StaffService

    configured = settings(database_url)
    policy = LoginPolicy(
        max_failures=configured.login_max_failures,
        lockout=timedelta(minutes=configured.login_lockout_minutes),
        session_lifetime=timedelta(hours=configured.session_hours),
    )
    return StaffService(made or engine(database_url), policy)
