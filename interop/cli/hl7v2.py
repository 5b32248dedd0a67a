"""HL7 v2 messages from files."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from interop.cli.common import DatabaseOption, engine, read_file

if TYPE_CHECKING:
    from adapters.hl7v2.er7 import Message, Segment

app = typer.Typer(help="HL7 v2 messages from files.", no_args_is_help=True)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="A file of messages: bare, MLLP-framed or a batch.")],
    database_url: DatabaseOption = None,
) -> None:
    """Read a file of HL7 v2 messages; prints one line per message: its ACK code and, when
    it was not accepted, where and why (what the ACK says). Exits 1 when any message was not
    accepted (AE or AR), as `interop ccda import` does for a document it did not process:
    GET /inbound/held keeps such a message with its reason for staff."""
    from datetime import UTC, datetime

    from interop.services.inbound import InboundService

    data = read_file(file, "message file", "give a file of HL7 v2 messages")
    acks = InboundService(engine(database_url), lambda: datetime.now(UTC)).receive_file(data)
    parsed = [_parsed(ack) for ack in acks]
    for number, ack in enumerate(parsed, start=1):
        typer.echo(f"message {number}: {_summary(ack)}")
    if any(_code(ack) != "AA" for ack in parsed):
        raise typer.Exit(1)


def _parsed(ack: bytes) -> "Message":
    from adapters.hl7v2.er7 import decode, parse_message

    return parse_message(decode(ack))


def _code(ack: "Message") -> str:
    msa = ack.first("MSA")
    return msa.value(1) if msa is not None else ""


def _summary(ack: "Message") -> str:
    """ "AA", or "AR PID-3: <reason>": MSA-1, then where and why for each ERR, in the texts
    the parser gives, unescaped (the ACK writes `ADT\\S\\A04`, the operator reads `ADT^A04`).
    The reason is ERR-8 (v2.5+); an ACK without any (pre-2.5: ERR-1 locates, MSA-3 says why)
    gives MSA-3 to its first ERR; the code's text (table 0357) is the last resort."""
    msa = ack.first("MSA")
    told = msa.value(3) if msa is not None else ""
    errs = ack.named("ERR")
    if not errs:
        return " ".join([_code(ack), told]).strip()
    first = 0 if told and not any(err.value(8) for err in errs) else None
    reasons = [
        _reason(_location(err), err.value(8) or (told if number == first else _code_text(err)))
        for number, err in enumerate(errs)
    ]
    return " ".join([_code(ack), "; ".join(reason for reason in reasons if reason)]).strip()


def _reason(where: str, text: str) -> str:
    if where and text and not text.startswith(where):
        return f"{where}: {text}"
    return text or where


def _location(err: "Segment") -> str:
    """ "PID-3" from ERR-2 (segment^sequence^field), or from ERR-1 before v2.5."""
    number = 2 if err.value(2) else 1
    segment, field = err.value(number, 1), err.value(number, 3)
    return f"{segment}-{field}" if segment and field else segment


def _code_text(err: "Segment") -> str:
    """The table 0357 text: ERR-3.2, or the second subcomponent of ERR-1.4 before v2.5."""
    return err.value(3, 2) or err.value(1, 4, 2)
