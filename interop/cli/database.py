"""The database schema."""

from typing import Annotated

import typer

from interop.cli.common import CliError, DatabaseOption, engine

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(database_url: DatabaseOption = None) -> None:
    """Bring the database schema up to date."""
    engine(database_url)
    typer.echo("database schema is up to date")


@app.command("attribute-origin")
def attribute_origin(
    organization: Annotated[
        str, typer.Argument(help="The program whose records they are: Organization/{id}.")
    ],
    database_url: DatabaseOption = None,
) -> None:
    """Name the program that wrote the records stored before origins were recorded (they carry
    the operator's origin, which the gate treats as a Part 2 program it cannot vouch for)."""
    from interop.services.compliance import attribute_operator_records
    from interop.services.errors import ResourceNotFound

    if not organization.startswith("Organization/"):
        raise CliError(f"{organization[:80]!r} is not Organization/{{id}}", 2)
    try:
        changed = attribute_operator_records(engine(database_url), organization)
    except ResourceNotFound as missing:
        raise CliError(
            f"{missing.message}: register the program first (`interop partners add`), or "
            "give the id `interop partners list` shows",
            2,
        ) from None
    typer.echo(f"{changed} versions attributed to {organization}")
