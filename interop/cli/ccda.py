"""C-CDA documents from partners: one file, or a partner's inbox folder watched."""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from interop.cli.common import CliError, DatabaseOption, engine, read_file

if TYPE_CHECKING:
    from interop.services.ccda_intake import DocumentIntake, DocumentReceipt, Sender
    from interop.sync.inbox import PickedUp

app = typer.Typer(help="C-CDA documents from partners.", no_args_is_help=True)

FromOption = Annotated[
    str,
    typer.Option(
        "--from",
        help="The sending partner's client_id: its Organization is the origin of what is written.",
    ),
]


def _intake(database_url: str | None, client_id: str) -> "tuple[DocumentIntake, Sender]":
    """The intake over the database, and the registered partner the documents come from."""
    from datetime import UTC, datetime

    from interop.services.ccda_intake import DocumentIntake
    from interop.services.errors import Forbidden, ResourceNotFound

    intake = DocumentIntake(engine(database_url), lambda: datetime.now(UTC))
    try:
        return intake, intake.sender(client_id)
    except (ResourceNotFound, Forbidden) as error:
        raise CliError(
            f"{error.message}: give a registered partner's client_id in --from", 2
        ) from None


def summary(receipt: "DocumentReceipt") -> str:
    """One line for the operator, who is staff: "processed #12: DocumentReference/...
    ServiceRequest/...", "refused #13: <why>" or "held #14: <why, as GET /inbound/held says>"
    (the partner is told only that it is held; staff are told why)."""
    from interop.services.ccda_intake import IntakeStatus

    head = _head(receipt)
    if receipt.status is IntakeStatus.PROCESSED:
        return f"{head}: {' '.join(receipt.resources)}"
    return f"{head}: {receipt.held_for or receipt.reason}"


def _head(receipt: "DocumentReceipt") -> str:
    again = " (already received)" if receipt.replayed else ""
    return f"{receipt.status.value} #{receipt.inbound_id}{again}"


def picked_up(taken: "PickedUp") -> str:
    """One line per inbox file, which may reach a service manager's journal: its state, our
    inbound row, the start of its SHA-256 and the ids of what it wrote, never its file name
    (senders name files after patients) nor its reason (`GET /inbound/held` has it)."""
    from interop.services.ccda_intake import IntakeStatus

    receipt = taken.receipt
    line = f"{_head(receipt)} sha256:{taken.digest}"
    if receipt.status is IntakeStatus.PROCESSED:
        return f"{line}: {' '.join(receipt.resources)}"
    return f"{line}: held for staff, see GET /inbound/held"


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="A C-CDA Referral Note or Transfer Summary.")],
    sender: FromOption,
    database_url: DatabaseOption = None,
) -> None:
    """Receive one document from a partner, as if it had posted it; prints what became of it,
    and why when it is refused or held for staff (exit 1)."""
    from interop.services.ccda_intake import Channel, IntakeStatus

    data = read_file(file, "document", "give a C-CDA XML file")
    intake, partner = _intake(database_url, sender)
    receipt = intake.receive(data, partner, Channel.FILE)
    typer.echo(summary(receipt))
    if receipt.status is not IntakeStatus.PROCESSED:
        raise typer.Exit(1)


@app.command("watch")
def watch(
    inbox: Annotated[Path, typer.Argument(help="The partner's inbox folder.")],
    sender: FromOption,
    once: Annotated[bool, typer.Option(help="Take what is there now, then stop.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between looks at the folder.", min=0.2)
    ] = 5.0,
    database_url: DatabaseOption = None,
) -> None:
    """Take each complete document a partner leaves in INBOX (hidden and .part names are still
    being written), receive it as that partner's, and move it to INBOX/processed/ or
    INBOX/held/; one line per document, with no file name (senders name files after patients)."""
    from adapters.ccda.pickup import DirectoryPickup
    from interop import logs
    from interop.cli.sync import _show_progress, _stop_on_signals
    from interop.services.ccda_intake import MAX_DOCUMENT_BYTES
    from interop.sync.inbox import DocumentInbox

    if not inbox.is_dir():
        raise CliError(f"no folder at {inbox}: give the partner's inbox folder (never created)", 2)
    intake, partner = _intake(database_url, sender)
    reader = DocumentInbox(intake, DirectoryPickup(inbox, MAX_DOCUMENT_BYTES), partner)
    logs.install()
    _show_progress()  # the inbox's one line per document, as the sync workers print theirs
    if once:
        for taken in reader.run_once():
            typer.echo(picked_up(taken))
        return
    reader.announce(interval)
    stop = _stop_on_signals()
    while not stop.is_set():
        for taken in reader.run_once():
            typer.echo(picked_up(taken))
        deadline = time.monotonic() + interval
        while not stop.is_set() and time.monotonic() < deadline:
            stop.wait(min(1.0, interval))
