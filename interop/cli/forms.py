"""Consent forms approved by compliance staff (PART2.md C9)."""

from typing import TYPE_CHECKING, Annotated

import typer

from interop.cli.common import DatabaseOption, engine

if TYPE_CHECKING:
    from interop.services.forms import ConsentForms

app = typer.Typer(help="Consent forms approved by compliance staff.", no_args_is_help=True)


@app.command("approve")
def approve(
    form: Annotated[str, typer.Argument(help="policy.uri, attachment URL or canonical|version.")],
    statement: Annotated[
        list[str],
        typer.Option(
            help="A statement the form contains: right-to-revoke, redisclosure-risk or "
            "refusal-consequences; repeatable."
        ),
    ] = [],  # noqa: B006
    title: Annotated[str, typer.Option(help="The form's title.")] = "",
    by: Annotated[str, typer.Option(help="Who approves (a staff username).")] = "cli",
    database_url: DatabaseOption = None,
) -> None:
    """Approve a consent form once with the §2.31 statements it contains."""
    approved = _forms(database_url).approve(form, title, statement, by)
    typer.echo(f"approved {approved.form}: {' '.join(approved.statements) or '(no statements)'}")


@app.command("list")
def list_forms(database_url: DatabaseOption = None) -> None:
    """The approved consent forms, one a line: form, statements, who approved and when."""
    for approved in _forms(database_url).list():
        typer.echo(
            f"{approved.form}\t{' '.join(approved.statements)}\t{approved.approved_by}\t"
            f"{approved.approved_at.isoformat()}"
        )


def _forms(database_url: str | None) -> "ConsentForms":
    from datetime import UTC, datetime

    from interop.services.forms import ConsentForms

    return ConsentForms(engine(database_url), lambda: datetime.now(UTC))
