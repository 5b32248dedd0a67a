"""The disclosure log: verify its keyed chain, and sign checkpoints of its head."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from interop.cli.common import CliError, DatabaseOption, existing_engine, read_file

app = typer.Typer(help="The disclosure log.", no_args_is_help=True)

CheckpointOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--checkpoint",
        help="A checkpoint file written by `interop audit checkpoint` (repeatable): the row it "
        "signed must still be there, unchanged (finds a cut end or a rolled-back database).",
    ),
]


@app.command("verify")
def verify(database_url: DatabaseOption = None, checkpoint: CheckpointOption = None) -> None:
    """Check the disclosure log's keyed hash chain; exit 1 naming the first row that does not
    hold. A database that does not exist is refused, never created."""
    from interop.services.compliance import ComplianceService
    from interop.services.errors import InvalidRequest

    tokens = [
        read_file(path, "checkpoint", "give a file written by `interop audit checkpoint`").decode()
        for path in checkpoint or []
    ]
    try:
        report = ComplianceService(existing_engine(database_url)).verify(tokens)
    except InvalidRequest as invalid:
        raise CliError(invalid.message, 2) from None
    if not report.intact:
        raise CliError(f"BROKEN at row {report.first_broken_seq}: {report.problem}")
    checked = f", {len(tokens)} checkpoint(s) found unchanged" if tokens else ""
    typer.echo(f"intact: {report.rows} rows{checked}")


@app.command("checkpoint")
def checkpoint(
    database_url: DatabaseOption = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the checkpoint here instead of printing it.")
    ] = None,
) -> None:
    """Sign the log's head (sequence and hash) for compliance staff to keep outside the
    database; `audit verify --checkpoint FILE` later proves nothing before it was removed."""
    from interop.services.compliance import ComplianceService

    if output is not None:
        check_output_file(output)
    token = ComplianceService(existing_engine(database_url)).checkpoint(datetime.now(UTC))
    if output is None:
        typer.echo(token)
        return
    output.write_text(token + "\n")
    typer.echo(f"checkpoint written to {output}")


def check_output_file(output: Path) -> None:
    """Refused before the head is signed: the file goes in a folder that exists (none is
    made for it) and is not one."""
    parent = output.absolute().parent
    if output.is_dir():
        raise CliError(
            f"--output {output} is a folder: give a file name, e.g. {output}/head.jws", 2
        )
    if not parent.is_dir():
        raise CliError(
            f"--output {output}: the folder {parent} does not exist: create it or write the "
            "checkpoint elsewhere",
            2,
        )


@app.command("accounting")
def accounting(
    patient_id: Annotated[str, typer.Argument(help="The Patient's id, e.g. alex-testperson.")],
    database_url: DatabaseOption = None,
    general_designation: Annotated[
        bool,
        typer.Option(
            "--general-designation",
            help="Only disclosures to participants reached through a general designation "
            "(42 CFR §2.24, §2.31(a)(4)(ii)(B)).",
        ),
    ] = False,
    format: Annotated[str, typer.Option(help="csv, html or fhir.")] = "csv",
) -> None:
    """The patient's accounting of disclosures for the past three years (§2.24)."""
    import orjson

    from interop.audit import accounting as acc
    from interop.services.compliance import ComplianceService
    from interop.services.errors import ResourceNotFound

    if format not in ("csv", "html", "fhir"):
        raise CliError("--format is csv, html or fhir", 2)
    service = ComplianceService(existing_engine(database_url))
    now = datetime.now(UTC)
    try:
        report = (
            service.general_designation_list(patient_id, now)
            if general_designation
            else service.accounting(patient_id, now)
        )
    except ResourceNotFound as missing:
        raise CliError(
            f"{missing.message}: give the id of a stored Patient (e.g. alex-testperson, "
            "without Patient/)",
            2,
        ) from None
    if format == "csv":
        typer.echo(acc.as_csv(report), nl=False)
    elif format == "html":
        typer.echo(acc.as_letter(report))
    else:
        typer.echo(orjson.dumps(acc.as_bundle(report), option=orjson.OPT_INDENT_2).decode())
    if (why := acc.incomplete_because(report)) is not None:
        # Said on stderr too: an operator piping the list to a file must not miss it.
        typer.echo(f"warning: {why}", err=True)
