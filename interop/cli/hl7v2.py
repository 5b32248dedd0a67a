"""HL7 v2 messages from files."""

from pathlib import Path
from typing import Annotated

import typer

from interop.cli.common import DatabaseOption, engine, read_file

app = typer.Typer(help="HL7 v2 messages from files.", no_args_is_help=True)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="A file of messages: bare, MLLP-framed or a batch.")],
    database_url: DatabaseOption = None,
) -> None:
    """Read a file of HL7 v2 messages; prints one line per message: its ACK code and, when
    it was not accepted, where and why (what the ACK's ERR segments say)."""
    from datetime import UTC, datetime

    from interop.services.inbound import InboundService

    data = read_file(file, "message file", "give a file of HL7 v2 messages")
    acks = InboundService(engine(database_url), lambda: datetime.now(UTC)).receive_file(data)
    for number, ack in enumerate(acks, start=1):
        typer.echo(f"message {number}: {ack_summary(ack)}")


def ack_summary(ack: bytes) -> str:
    """ "AA", or "AR PID-3: <reason>" from MSA-1, ERR-2 (location) and ERR-8 (user message);
    pre-2.5 ACKs name the place in ERR-1 and the reason in MSA-3."""
    segments = [line.decode("utf-8", "replace").split("|") for line in ack.split(b"\r") if line]
    msa = next((fields for fields in segments if fields[0] == "MSA"), ["MSA", ""])
    code = msa[1] if len(msa) > 1 else ""
    reasons = [_err(fields) for fields in segments if fields[0] == "ERR"]
    if not reasons and len(msa) > 3 and msa[3]:
        reasons = [msa[3]]
    return " ".join([code, "; ".join(reason for reason in reasons if reason)]).strip()


def _err(fields: list[str]) -> str:
    location = fields[2] if len(fields) > 2 and fields[2] else fields[1] if len(fields) > 1 else ""
    parts = location.split("^")
    where = f"{parts[0]}-{parts[2]}" if len(parts) > 2 and parts[2] else parts[0]
    message = fields[8] if len(fields) > 8 else ""
    if not message and len(fields) > 3:
        message = fields[3].split("^")[1] if "^" in fields[3] else ""
    if message.startswith(where):
        return message
    return f"{where}: {message}" if where and message else where or message
