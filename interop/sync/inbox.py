"""A partner's inbox folder: the ccda-directory channel read the other way (`interop ccda watch`).

A partner (its Direct HISP, its interface engine, an SFTP share mounted here) leaves C-CDA
documents in a folder that belongs to it alone; each complete file (adapters.ccda.pickup) is
received through interop.services.ccda_intake as that partner's, then moved to `processed/` or
`held/` beside it. The move comes after the transaction that recorded the document: a crash in
between leaves the file in the inbox, and the next round finds it already processed (by its
SHA-256) and only moves it. A round that cannot reach the database leaves every file where it
is for the next round. One log line per file, naming the inbound row and the outcome only (no
file names: senders name files after patients).
"""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from adapters.ccda.pickup import DirectoryPickup, Outcome
from interop.services.ccda_intake import Channel, DocumentIntake, DocumentReceipt, IntakeStatus
from interop.services.ccda_records import Sender

logger = logging.getLogger("interop.sync.inbox")


@dataclass(frozen=True, slots=True)
class PickedUp:
    """One file taken from the inbox: what became of it and where it is now. `digest` is the
    start of its SHA-256, by which an operator finds the file (`sha256sum`) without its name
    being printed: senders name files after patients."""

    digest: str
    receipt: DocumentReceipt
    moved_to: Path


class DocumentInbox:
    def __init__(self, intake: DocumentIntake, pickup: DirectoryPickup, sender: Sender) -> None:
        self._intake = intake
        self._pickup = pickup
        self._sender = sender

    def announce(self, interval: float) -> None:
        logger.info(
            "ccda inbox: watching for %s every %.1f s", self._sender.client_id[:64], interval
        )

    def run_once(self) -> list[PickedUp]:
        """Every complete file in the inbox now, oldest first."""
        taken = []
        for picked in self._pickup.complete_files():
            receipt = self._intake.receive(picked.content, self._sender, Channel.DIRECTORY)
            done = Outcome.PROCESSED if receipt.status is IntakeStatus.PROCESSED else Outcome.HELD
            moved = self._pickup.move(picked.path, done)
            logger.info(
                "ccda inbox: document %s (inbound #%d%s)",
                receipt.status.value,
                receipt.inbound_id,
                ", already received" if receipt.replayed else "",
            )
            digest = hashlib.sha256(picked.content).hexdigest()[:12]
            taken.append(PickedUp(digest, receipt, moved))
        return taken
