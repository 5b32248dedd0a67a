"""The accounting of disclosures a patient may ask for (42 CFR §2.24; PART2.md A2, E1).

Disclosures made with the patient's consent over the past three years: to whom, when, and a
brief description of what; medical-emergency disclosures made without consent are listed
apart, as compliance staff review them (§2.51). Rendered as a FHIR Bundle of AuditEvents, as
CSV, and as a letter the patient can read (HTML, every value escaped).

`under_general_designation` narrows it to what §2.24 (as amended in 2024) has an intermediary
list on the patient's written request: the disclosures made to member participants reached
through a general designation (§2.31(a)(4)(ii)(B)) rather than by name, with for each the
recipient, the date and a brief description, over the past three years.

A row of the patient's log that cannot be read (altered: interop.audit.log.Unreadable) is
never left out unseen nor guessed at: each form names it and says the accounting may be
incomplete.
"""

import csv
import html
import io
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from interop.audit.events import audit_event, unreadable_event
from interop.audit.log import Unreadable
from interop.store.fhirdates import format_instant
from interop.store.tables import DisclosureLogRow

ACCOUNTING_YEARS = 3
NOT_DISCLOSURES = frozenset(
    {"preview", "cds-consult", "update", "delete", "sync-prepare", "export-prepare"}
)
"""Decisions on which nothing left for the recipient named (PART2.md A2 lists disclosures
only): a document shown to staff before sending, a consent consult answered to the system
that asked about a third party, an update's or delete's check of the version it replaces, and
a push's payload as it is built (`sync-push` records it once the partner took it), and a
partner's export job deciding what goes in its files (`export-download` records what leaves
when the partner downloads them).
What a write answers its writer with is logged apart ("write-answer") and is a disclosure: a
shared Task sent back rebased carries what the other side wrote. A create is not among them
either: one whose If-None-Exist matches answers with the record it matched."""


@dataclass(frozen=True, slots=True)
class Disclosure:
    when: datetime
    recipient: str
    recipient_name: str
    purposes: str
    description: str
    consent: str | None
    emergency: bool
    row: DisclosureLogRow


@dataclass(frozen=True, slots=True)
class Accounting:
    patient: str
    patient_name: str
    since: datetime
    until: datetime
    with_consent: tuple[Disclosure, ...]
    emergencies: tuple[Disclosure, ...]
    general_designation: bool = False
    unreadable: tuple[int, ...] = ()
    """The log's rows for this patient that cannot be read: any may have been a disclosure."""


def accounting(
    patient: str,
    patient_name: str,
    rows: Sequence[DisclosureLogRow | Unreadable],
    names: Mapping[str, str],
    since: datetime,
    until: datetime,
) -> Accounting:
    """Only releases of Part 2 data to others count: a program's own use is no disclosure."""
    disclosed = [
        _disclosure(row, names)
        for row in rows
        if not isinstance(row, Unreadable)
        and row.decision == "permit"
        and row.part2
        and row.rule != "USE"
        and row.interaction not in NOT_DISCLOSURES
    ]
    return Accounting(
        patient,
        patient_name,
        since,
        until,
        tuple(d for d in disclosed if not d.emergency),
        tuple(d for d in disclosed if d.emergency),
        unreadable=tuple(row.seq for row in rows if isinstance(row, Unreadable)),
    )


def incomplete_because(report: Accounting) -> str | None:
    """Why the accounting may be incomplete, in words for the patient and staff; None when
    every row of the patient's log could be read."""
    if not report.unreadable:
        return None
    rows = ", ".join(str(seq) for seq in report.unreadable)
    return (
        f"row {rows} of the disclosure log cannot be read: it was altered after it was "
        "written, so what it recorded is not known and this accounting may be incomplete"
        if len(report.unreadable) == 1
        else f"rows {rows} of the disclosure log cannot be read: they were altered after they "
        "were written, so what they recorded is not known and this accounting may be incomplete"
    )


def under_general_designation(
    report: Accounting, designated: Callable[[DisclosureLogRow], bool]
) -> Accounting:
    """§2.24: only the disclosures made pursuant to the patient's general designation."""
    return replace(
        report,
        with_consent=tuple(d for d in report.with_consent if designated(d.row)),
        emergencies=(),
        general_designation=True,
    )


def as_bundle(report: Accounting) -> dict[str, Any]:
    """A collection of AuditEvents, valid R4: no `total`, which bdl-1 keeps to searches and
    histories (the count is the number of entries), and no `entry` when there is nothing to
    list, since FHIR JSON has no empty arrays. The entries carry no fullUrl: the events are
    not served at URLs of their own, so none could be unique (bdl-7) or resolve."""
    entries = [
        {"resource": audit_event(d.row)} for d in (*report.with_consent, *report.emergencies)
    ] + [{"resource": unreadable_event(seq, report.until)} for seq in report.unreadable]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": format_instant(report.until),
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def as_csv(report: Accounting) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "date",
            "recipient",
            "recipient_reference",
            "purpose",
            "description",
            "consent",
            "emergency",
        ]
    )
    for d in (*report.with_consent, *report.emergencies):
        writer.writerow(
            [
                format_instant(d.when),
                _safe(d.recipient_name),
                d.recipient,
                d.purposes,
                d.description,
                d.consent or "",
                "yes" if d.emergency else "no",
            ]
        )
    if (why := incomplete_because(report)) is not None:
        writer.writerow(["", "", "", "", why, "", ""])
    return buffer.getvalue()


def as_letter(report: Accounting) -> str:
    """A plain letter: who received the patient's records, when, and what."""
    e = html.escape
    rows = "".join(_letter_row(d) for d in report.with_consent) or (
        '<tr><td colspan="4">No disclosures were made with your consent in this period.</td></tr>'
    )
    emergencies = "".join(_letter_row(d) for d in report.emergencies)
    emergency_part = (
        "<h2>Disclosures in a medical emergency</h2><p>These were made without your consent, "
        "because of a medical emergency, as 42 CFR §2.51 allows.</p>"
        f"<table><thead>{_HEAD}</thead><tbody>{emergencies}</tbody></table>"
        if report.emergencies
        else ""
    )
    title = "List of disclosures" if report.general_designation else "Accounting of disclosures"
    scope = (
        "to the participants below, whom your consent designated generally as participants "
        "with a treating provider relationship with you rather than by name (42 CFR §2.24, "
        "§2.31(a)(4)(ii)(B))"
        if report.general_designation
        else "to the recipients below, with your written consent (42 CFR §2.24)"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body><main>"
        f"<h1>{title} for {e(report.patient_name)}</h1>"
        f"<p>From {e(report.since.date().isoformat())} to {e(report.until.date().isoformat())}, "
        "Recovery Interop disclosed records of your substance use disorder care "
        f"{scope}.</p>"
        f"{_incomplete_part(report)}"
        f"<table><thead>{_HEAD}</thead><tbody>{rows}</tbody></table>"
        f"{emergency_part}</main></body></html>"
    )


def _incomplete_part(report: Accounting) -> str:
    why = incomplete_because(report)
    if why is None:
        return ""
    return f'<p role="alert"><strong>This list may be incomplete.</strong> {html.escape(why)}.</p>'


_HEAD = "<tr><th>Date</th><th>Recipient</th><th>Purpose</th><th>What was disclosed</th></tr>"
_PURPOSES = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment",
    "HPAYMT": "payment",
    "HOPERAT": "health care operations",
    "COC": "coordination of care",
    "PATRQT": "at your request",
}


def _letter_row(d: Disclosure) -> str:
    e = html.escape
    purposes = ", ".join(_PURPOSES.get(code, code) for code in d.purposes.split())
    return (
        f"<tr><td>{e(d.when.date().isoformat())}</td><td>{e(d.recipient_name)}</td>"
        f"<td>{e(purposes)}</td><td>{e(d.description)}</td></tr>"
    )


def _disclosure(row: DisclosureLogRow, names: Mapping[str, str]) -> Disclosure:
    kinds = Counter(reference.split("/")[0] for reference in row.resources.split())
    description = ", ".join(
        f"{count} {_plain(kind)}{'s' if count > 1 else ''}" for kind, count in sorted(kinds.items())
    )
    return Disclosure(
        when=row.recorded_at,
        recipient=row.requester,
        recipient_name=names.get(row.requester, row.requester),
        purposes=row.purposes,
        description=description,
        consent=row.consent,
        emergency=row.emergency,
        row=row,
    )


_PLAIN = {
    "CarePlan": "care plan",
    "ServiceRequest": "referral",
    "Task": "referral task",
    "Patient": "demographic record",
    "EpisodeOfCare": "episode of care",
    "Condition": "problem or health concern",
    "Goal": "care plan goal",
    "DocumentReference": "document",
    "Encounter": "visit record",
}


def _plain(kind: str) -> str:
    return _PLAIN.get(kind, kind)


def _safe(text: str) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
