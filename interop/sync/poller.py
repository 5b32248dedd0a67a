"""What partners with a FHIR server did to the referrals we sent them, read back from their
server (REFERRALS.md: poll `Task?_lastUpdated=...` as the fallback to subscriptions) and
applied to our Task as that partner's side of the workflow.

A partner's copy of our Task carries our Task's absolute URL as an identifier (we pushed it so,
interop.sync.payloads); only those are read. From each, the elements its side may change are
taken (the owner: status, businessStatus, statusReason, executionPeriod, output, note,
lastModified; the requester: status, statusReason, note, input) and written to our Task
through the workflow check of mappings.workflow, with the partner as origin, so it is not
told of its own change while the other party is. References in what is taken are made
absolute on the partner's server, where they resolve.

Every version of a partner's copy is kept once, like an inbound message (channel
"fhir-poll"): processed when applied, held for staff (`GET /inbound/held`) when the workflow
refuses it or it is not valid FHIR, in which case our Task stays as it was. A version already
kept is never applied again, so a copy read again cannot undo what happened here since.

The watermark is the latest meta.lastUpdated seen on that partner's server, searched again with
`ge`, so an update sharing that instant is never missed; seeing a copy again changes nothing.

Operators see one log line per partner per round (`poll partner=... seen=... applied=...
held=... elapsed_ms=... cause=...`) and, on start, which partners are read and how often:
client ids, counts and reasons of ours, never a copy's content nor a partner's own explanation.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from adapters.errors import PartnerRejected, PartnerUnavailable
from interop.services.errors import ServiceError
from interop.services.inbound import reason_of
from interop.services.outbox import ChannelKind
from interop.services.resources import ResourceOperations, as_written, internal_operations
from interop.services.search_parser import Paging
from interop.store.database import unit_of_work
from interop.store.fhirdates import parse_range
from interop.store.tables import InboundMessageRow, PartnerRow
from interop.sync.channels import ChannelDeliverer
from interop.sync.payloads import URI_SYSTEM, absolute_references
from mappings.errors import FhirContentError
from mappings.workflow import Side, identifier_key, names_party, passed_through, steps

_PAGING = Paging(1, 1)
_log = logging.getLogger(__name__)
_OWNER_ELEMENTS = (
    "status",
    "businessStatus",
    "statusReason",
    "executionPeriod",
    "output",
    "note",
    "lastModified",
)
_REQUESTER_ELEMENTS = ("status", "statusReason", "note", "input")
CHANNEL = "fhir-poll"


@dataclass(frozen=True, slots=True)
class PollReport:
    """One partner's round: copies read, changes applied, changes held, or why it failed."""

    partner: str
    seen: int = 0
    applied: int = 0
    held: int = 0
    error: str = ""


class Poller:
    def __init__(
        self,
        engine: Engine,
        deliverer: ChannelDeliverer,
        fhir_base: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._deliverer = deliverer
        self._ours = fhir_base.rstrip("/") + "/Task/"
        self._clock = clock

    def announce(self, interval: float) -> None:
        """The start line: whom the poller reads (FHIR partners' client ids) and how often."""
        served = sorted(partner.client_id for partner in self._partners(requested_only=False))
        _log.info(
            "poller started: %d FHIR partners (%s), a full round every %.0fs,"
            " notified partners within a second",
            len(served),
            ", ".join(served) or "none yet",
            interval,
        )

    def run_once(self) -> list[PollReport]:
        return [self._poll(partner) for partner in self._partners(requested_only=False)]

    def run_requested(self) -> list[PollReport]:
        """Poll the partners whose servers notified us since their last poll."""
        reports = []
        for partner in self._partners(requested_only=True):
            asked = partner.poll_requested_at
            reports.append(self._poll(partner))
            self._clear_request(partner, asked)
        return reports

    def _partners(self, *, requested_only: bool) -> list[PartnerRow]:
        with unit_of_work(self._engine, writes=False) as session:
            statement = select(PartnerRow).where(
                col(PartnerRow.enabled).is_(True), col(PartnerRow.channel) == ChannelKind.FHIR
            )
            if requested_only:
                statement = statement.where(col(PartnerRow.poll_requested_at).is_not(None))
            return list(session.execute(statement).scalars())

    def _clear_request(self, partner: PartnerRow, asked: datetime | None) -> None:
        """Only the request this poll answered: one that came in meanwhile stays."""
        with unit_of_work(self._engine) as session:
            row = session.get(PartnerRow, partner.pk)
            if row is not None and row.poll_requested_at == asked:
                row.poll_requested_at = None
                session.add(row)

    def _poll(self, partner: PartnerRow) -> PollReport:
        """One partner's round, then its log line; whatever goes wrong stays with that partner."""
        started = time.monotonic()
        try:
            report = self._read_back(partner)
        except Exception as error:  # a partner's nonsense or our bug: report, go on
            report = PollReport(partner.client_id, error=f"internal error ({type(error).__name__})")
        _log_round(report, round((time.monotonic() - started) * 1000))
        return report

    def _read_back(self, partner: PartnerRow) -> PollReport:
        channel = self._deliverer.fhir_channel(partner)
        params = {"_sort": "_lastUpdated", "_count": "100"}
        if partner.poll_watermark:
            params["_lastUpdated"] = f"ge{partner.poll_watermark}"
        try:
            copies = channel.search("Task", params)
        except (PartnerUnavailable, PartnerRejected) as error:
            return PollReport(partner.client_id, error=str(error)[:300])
        applied = held = 0
        for copy, our_id in self._ours_among(copies):
            outcome = self._apply(partner, copy, our_id)
            applied += outcome == "applied"
            held += outcome == "held"
        self._advance(partner, copies)
        return PollReport(partner.client_id, len(copies), applied, held)

    def _ours_among(self, copies: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str]]:
        for copy in copies:
            identifiers = copy.get("identifier")
            for identifier in identifiers if isinstance(identifiers, list) else []:
                if not isinstance(identifier, dict):
                    continue
                value = str(identifier.get("value", ""))
                if identifier.get("system") == URI_SYSTEM and value.startswith(self._ours):
                    yield copy, value.removeprefix(self._ours)
                    break

    def _apply(self, partner: PartnerRow, copy: dict[str, Any], our_id: str) -> str:
        """ "applied", "same" (nothing new), "held" (refused, kept for staff) or "unknown"."""
        organization = f"Organization/{partner.organization_id}"
        base = (partner.channel_address or "").rstrip("/")
        version = _version_key(copy)
        try:
            with unit_of_work(self._engine) as session:
                if _seen(session, partner.client_id, version):
                    # Applied or held already: read again (the watermark is `ge`), it must not
                    # undo what happened here since.
                    return "same"
                with internal_operations(
                    session,
                    "fhir-poll",
                    paging=_PAGING,
                    on_behalf_of=organization,
                    acting_for=organization,
                ) as operations:
                    ours = as_written(operations.read("Task", our_id).content)
                    found = _side_of(ours, organization)
                    if found is None:
                        return "unknown"
                    side, elements = found
                    if not self._names_our_parties(operations, ours, copy):
                        raise Forged(
                            "the copy names other parties than our Task: it is not the "
                            "partner's copy of our referral"
                        )
                    merged = _signed_as_ours(_merged(ours, copy, elements, base), copy, ours)
                    if merged == ours:
                        return "same"
                    for move in _moves(ours, merged, side):
                        operations.update("Task", our_id, move)
                session.add(self._record(partner, copy, our_id, version, "processed", []))
            return "applied"
        except (ServiceError, FhirContentError) as error:
            return self._hold(partner, copy, our_id, reason_of(error))
        except Forged as forged:
            return self._hold(partner, copy, our_id, str(forged))

    def _names_our_parties(
        self, operations: ResourceOperations, ours: dict[str, Any], copy: dict[str, Any]
    ) -> bool:
        """Whether the copy's requester and owner are our Task's, by identifier or by our
        absolute URL: anyone the partner's server lets write a Task may put our Task's URL in
        its identifiers, and only the parties' own copy speaks for the other side (the
        partner's server lets no one else write a Task naming them, README)."""
        base = self._ours.removesuffix("/Task/")
        for role in ("requester", "owner"):
            party, theirs = ours.get(role), copy.get(role)
            if not isinstance(party, dict) or not isinstance(theirs, dict):
                return False
            here = absolute_references(party, base).get("reference")
            known = _identifiers_of(operations, party)
            if (
                theirs.get("reference") != here
                and identifier_key(theirs.get("identifier")) not in known
            ):
                return False
        return True

    def _hold(self, partner: PartnerRow, copy: dict[str, Any], our_id: str, reason: str) -> str:
        with unit_of_work(self._engine) as session:
            version = _version_key(copy)
            if not _seen(session, partner.client_id, version):
                session.add(self._record(partner, copy, our_id, version, "held", [reason]))
        return "held"

    def _record(
        self,
        partner: PartnerRow,
        copy: dict[str, Any],
        our_id: str,
        version: str,
        status: str,
        problems: list[str],
    ) -> InboundMessageRow:
        """The partner's copy as read, kept like any inbound message: processed or held."""
        return InboundMessageRow(
            received_at=self._clock(),
            channel=CHANNEL,
            sender=partner.client_id,
            control_id=version,
            message_type="Task",
            ack_code="",
            status=status,
            problems=orjson.dumps(problems).decode() if problems else "",
            resources=f"Task/{our_id}",
            raw=orjson.dumps(copy),
        )

    def _advance(self, partner: PartnerRow, copies: list[dict[str, Any]]) -> None:
        latest = _latest(copies)
        if latest is None:
            return
        with unit_of_work(self._engine) as session:
            row = session.get(PartnerRow, partner.pk)
            if row is not None:
                row.poll_watermark = latest
                session.add(row)


class Forged(Exception):
    """A Task on the partner's server carries our Task's URL but is not the parties' copy."""


def _identifiers_of(
    operations: ResourceOperations, party: dict[str, Any]
) -> set[tuple[str | None, str]]:
    """The identifiers of the Organization a party of our Task names, in canonical form."""
    reference = str(party.get("reference", ""))
    kind, _, ident = reference.partition("/")
    if kind != "Organization" or not ident:
        return set()
    try:
        organization = as_written(operations.read("Organization", ident).content)
    except ServiceError:
        return set()
    found = {identifier_key(item) for item in organization.get("identifier") or ()}
    return {key for key in found if key is not None}


def _signed_as_ours(
    merged: dict[str, Any], copy: dict[str, Any], ours: dict[str, Any]
) -> dict[str, Any]:
    """Each note signed by one of the copy's parties signed by that party as we name it: the
    partner's server names the organizations by its own ids, and the workflow check here
    compares a note's author with our Task's parties (a note the partner signs as the other
    party is then refused, as it would be if written here)."""
    notes = merged.get("note")
    if not isinstance(notes, list):
        return merged
    signed = []
    for note in notes:
        author = note.get("authorReference") if isinstance(note, dict) else None
        for role in ("requester", "owner"):
            if author is not None and names_party(author, copy.get(role)):
                note = {**note, "authorReference": ours[role]}
                break
        signed.append(note)
    return {**merged, "note": signed}


def _side_of(ours: dict[str, Any], organization: str) -> tuple[Side, tuple[str, ...]] | None:
    """The partner's side of our Task and the elements it may change; None if no party."""
    for side, elements in ((Side.OWNER, _OWNER_ELEMENTS), (Side.REQUESTER, _REQUESTER_ELEMENTS)):
        party = ours.get(side.value)
        reference = party.get("reference", "") if isinstance(party, dict) else ""
        if str(reference).split("/")[-2:] == organization.split("/"):
            return side, elements
    return None


def _moves(ours: dict[str, Any], merged: dict[str, Any], side: Side) -> list[dict[str, Any]]:
    """One write per move the partner made between two polls, each checked as the table
    allows it; one write when the status stayed or no way exists (the workflow check then
    says why). A move on the way carries what the partner's latest copy tells of it
    (workflow.passed_through)."""
    old, new = str(ours.get("status")), str(merged.get("status"))
    *between, last = (steps(old, new, side) if old != new else None) or [new]
    return [passed_through(ours, merged, status) for status in between] + [
        {**merged, "status": last}
    ]


def _merged(
    ours: dict[str, Any], copy: dict[str, Any], elements: tuple[str, ...], base: str
) -> dict[str, Any]:
    merged = {key: value for key, value in ours.items() if key not in elements}
    for element in elements:
        if element in copy:
            merged[element] = absolute_references(copy[element], base)
    return merged


def _latest(copies: list[dict[str, Any]]) -> str | None:
    stamped = []
    for copy in copies:
        meta = copy.get("meta")
        text = meta.get("lastUpdated") if isinstance(meta, dict) else None
        if isinstance(text, str):
            try:
                stamped.append((parse_range(text)[0], text))
            except ValueError:
                continue
    return max(stamped)[1] if stamped else None


def _version_key(copy: dict[str, Any]) -> str:
    found = copy.get("meta")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    stamp = meta.get("versionId") or meta.get("lastUpdated") or ""
    return f"{copy.get('id', '')}/_history/{stamp}"[:200]


def _seen(session: Session, sender: str, version: str) -> bool:
    statement = select(col(InboundMessageRow.pk)).where(
        col(InboundMessageRow.channel) == CHANNEL,
        col(InboundMessageRow.sender) == sender,
        col(InboundMessageRow.control_id) == version,
    )
    return session.execute(statement).first() is not None


def _log_round(report: PollReport, elapsed_ms: int) -> None:
    """The operator's line for one partner's round: counts, and our reason when it failed."""
    _log.log(
        logging.WARNING if report.error else logging.INFO,
        "poll partner=%s seen=%d applied=%d held=%d elapsed_ms=%d cause=%s",
        report.partner,
        report.seen,
        report.applied,
        report.held,
        elapsed_ms,
        _our_reason(report.error) or "-",
    )


def _our_reason(error: str) -> str:
    """The part of a round's error that is ours: an adapter error reads "reason: detail"
    (adapters.errors), where the detail is the partner's text and may echo what was sent."""
    return error.partition(": ")[0][:100]
