"""The `interop` command: serve the API, seed the demo, manage partners, staff and the database.

Each group of commands lives in its own module and imports what it needs inside the command,
so `interop --help` and the commands that need no web app start at once. Every error an
operator can fix leaves as one line on stderr (exit 2 for usage errors, 1 for failures)
instead of a traceback.
"""

import sys
from typing import Any, NoReturn

import typer

from interop.cli import (
    audit,
    ccda,
    database,
    demo,
    export,
    forms,
    hl7v2,
    partners,
    server,
    sync,
    token,
    users,
)
from interop.cli.failures import describe
from interop.cli.server import openapi_document

__all__ = ["app", "openapi_document"]


class _Command(typer.Typer):
    """The console script: runs the command, then exits with one line for a fixable error."""

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        try:
            status = super().__call__(*args, standalone_mode=False, **kwargs)
        except Exception as error:
            described = describe(error)
            if described is None:
                raise
            message, status = described
            if message:  # empty when the help was shown instead (no arguments at all)
                typer.echo(f"error: {message}", err=True)
        sys.exit(status if isinstance(status, int) else 0)


app = _Command(
    help="Recovery Interop: FHIR R4 interoperability for addiction treatment.",
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
app.command()(server.serve)
app.command()(server.mllp)
app.command()(server.openapi)
app.command()(demo.demo)
app.command()(token.token)
app.command()(export.export)
app.add_typer(database.app, name="db")
app.add_typer(partners.app, name="partners")
app.add_typer(users.app, name="users")
app.add_typer(audit.app, name="audit")
app.add_typer(hl7v2.app, name="hl7v2")
app.add_typer(ccda.app, name="ccda")
app.add_typer(sync.app, name="sync")
app.add_typer(forms.app, name="forms")
