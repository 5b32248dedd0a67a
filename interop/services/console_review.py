"""What compliance officers review in the console: the disclosure log and its decisions,
break-the-glass sign-offs, the chain and its checkpoints, consents and the forms they are
signed on (PART2.md A1-A3, C6, C9, E1).

The log is read through the compliance service; consents are read through the resource service
(so through the gate, logged as use within the program) and judged as the API judges them. The
one write to the log made here is a compliance officer's sign-off of a break-the-glass
disclosure, appended to the same hash chain as the decision it reviews.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from interop.audit.accounting import Accounting
from interop.audit.events import UNREADABLE_OUTCOME
from interop.audit.log import ChainReport, LogEntry, append
from interop.auth.requester import Requester
from interop.auth.scopes import parse_scopes
from interop.services import bundle_builder as bb
from interop.services.compliance import ComplianceService, LogQuery
from interop.services.directives import consent_warnings
from interop.services.errors import BusinessRuleBroken, Forbidden, InvalidRequest, ResourceNotFound
from interop.services.forms import ApprovedForm, ConsentForms
from interop.services.resources import ResourceService
from interop.services.staff import Role, StaffPrincipal
from interop.store.database import unit_of_work
from interop.store.fhirdates import parse_range
from interop.store.repository import ResourceRepository
from mappings.consent import REVOCATION_RECEIVED, form_keys
from mappings.errors import Issue

"""The date the patient's written revocation reached the program (a Consent extension)."""
REVIEW_DECISION = "reviewed"
REVIEW_RULE = "E1-review"
_LOG_LIMIT = 1000
_SHOWN_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Decision:
    """One row of the disclosure log as a compliance officer reads it."""

    seq: int
    recorded: str
    requester: str
    client_id: str
    interaction: str
    patient: str | None
    purposes: tuple[str, ...]
    released: bool
    rule: str
    consent: str | None
    provision: str | None
    resources: tuple[str, ...]
    labels: tuple[str, ...]
    emergency: dict[str, str]
    readable: bool = True
    """False for a row altered so that it cannot be read: only its number is known."""

    @classmethod
    def unreadable(cls, seq: int) -> "Decision":
        """A row that cannot be read, in its place: nothing of what it held is shown."""
        return cls(seq, "", "", "", "", None, (), False, "", None, None, (), (), {}, False)

    @property
    def day(self) -> str:
        return self.recorded[:10]

    @property
    def is_review(self) -> bool:
        """A compliance sign-off of an emergency disclosure rather than a gate decision."""
        return self.rule == REVIEW_RULE


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """The console's filters; empty strings mean "any"."""

    patient: str = ""
    recipient: str = ""
    purpose: str = ""
    consent: str = ""
    rule: str = ""
    date_from: str = ""
    date_to: str = ""
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class Emergency:
    decision: Decision
    signed_off_by: str | None


@dataclass(frozen=True, slots=True)
class ConsentLine:
    """One stored consent as the registry shows it, with why it cannot be relied on."""

    id: str
    version: int
    patient: str
    status: str
    disclosers: tuple[str, ...]
    recipients: tuple[str, ...]
    purposes: tuple[str, ...]
    expires: str | None
    problems: tuple[str, ...]
    revocation_received: str | None


@dataclass(frozen=True, slots=True)
class AwaitingForm:
    """A form that stored consents name and compliance staff have not approved (C9)."""

    form: str
    consents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FormsView:
    awaiting: tuple[AwaitingForm, ...]
    approved: tuple[ApprovedForm, ...]


class ReviewConsole:
    def __init__(
        self,
        resources: ResourceService,
        compliance: ComplianceService,
        forms: ConsentForms,
        engine: Engine,
    ) -> None:
        self._engine = engine
        self._forms = forms
        self._resources = resources
        self._compliance = compliance

    def decisions(self, wanted: DecisionFilter) -> list[Decision]:
        """The newest matching decisions (at most 200 of the newest 1000 the log filters)."""
        query = LogQuery(
            patient=_reference(wanted.patient, "Patient"),
            requester=_reference(wanted.recipient, "Organization"),
            consent=wanted.consent.strip() or None,
            since=_bound(wanted.date_from, 0),
            until=_bound(wanted.date_to, 1),
            decision={"released": "permit", "withheld": "deny"}.get(wanted.outcome),
            count=_LOG_LIMIT,
        )
        found = self._logged(query)
        purpose, rule = wanted.purpose.strip().upper(), wanted.rule.strip()
        matching = [  # a row that cannot be read may have matched: it stays in sight
            decision
            for decision in found
            if not decision.readable
            or (
                (not purpose or purpose in decision.purposes)
                and (not rule or decision.rule == rule)
            )
        ]
        return matching[:_SHOWN_LIMIT]

    def decision(self, seq: int) -> Decision:
        """One decision by its place in the chain, whose rows are numbered from 1 without gaps
        (a gap is a broken chain, which `verify` names)."""
        length = self._chain_length()
        if not 1 <= seq <= length:
            raise ResourceNotFound(f"no decision has number {seq}")
        found = self._logged(LogQuery(count=1, offset=length - seq))
        if not found or found[0].seq != seq:
            raise ResourceNotFound(f"no decision has number {seq}")
        return found[0]

    def emergencies(self) -> list[Emergency]:
        """Break-the-glass releases, unreviewed first, each with who signed it off."""
        released = self._logged(LogQuery(emergency=True, decision="permit", count=_LOG_LIMIT))
        reviews = self._logged(LogQuery(decision=REVIEW_DECISION, count=_LOG_LIMIT))
        reviewers = {
            resource.removeprefix("AuditEvent/disclosure-"): review.client_id.removeprefix("staff:")
            for review in reviews
            for resource in review.resources
        }
        listed = [Emergency(d, reviewers.get(str(d.seq))) for d in released]
        return sorted(listed, key=lambda e: (e.signed_off_by is not None, -e.decision.seq))

    def sign_off(self, seq: int, reviewer: StaffPrincipal, now: datetime) -> None:
        """A compliance officer's review of an emergency disclosure, as its own chain link."""
        require_role(reviewer, Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR)
        reviewed = self.decision(seq)
        if not reviewed.readable:
            raise InvalidRequest(f"decision {seq} cannot be read: the log was altered there")
        if not reviewed.emergency or not reviewed.released:
            raise InvalidRequest(f"decision {seq} is not an emergency disclosure")
        if any(e.decision.seq == seq and e.signed_off_by for e in self.emergencies()):
            raise BusinessRuleBroken(f"decision {seq} is already signed off")
        entry = LogEntry(
            recorded_at=now,
            client_id=f"staff:{reviewer.username}",
            requester=f"staff:{reviewer.username}",
            patient=reviewed.patient,
            purposes=("HOPERAT",),
            interaction="review",
            decision=REVIEW_DECISION,
            rule=REVIEW_RULE,
            consent=None,
            provision=None,
            resources=(f"AuditEvent/disclosure-{seq}",),
            labels=(),
            part2=False,
            emergency=False,
            emergency_facts=None,
        )
        with unit_of_work(self._engine) as session:
            append(session, [entry])

    def accounting(self, staff: StaffPrincipal, patient: str, now: datetime) -> Accounting:
        """The patient's accounting of disclosures (A2), the patient named by id or by
        `Patient/id`, as the console's other patient filters take them."""
        require_role(staff, Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR)
        reference = _reference(patient, "Patient")
        if reference is None:
            raise InvalidRequest("give the patient's id (or Patient/id) to open the letter")
        return self._compliance.accounting(reference.removeprefix("Patient/"), now)

    def chain(self, checkpoints: Sequence[str] = ()) -> ChainReport:
        """The chain walked now, and checked against checkpoints kept outside the database."""
        return self._compliance.verify([token.strip() for token in checkpoints if token.strip()])

    def checkpoint(self, staff: StaffPrincipal, now: datetime) -> str:
        """The chain's head signed now, for the officer to keep outside the database."""
        require_role(staff, Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR)
        return self._compliance.checkpoint(now)

    def forms(self, staff: StaffPrincipal) -> FormsView:
        """Forms the stored consents are signed on that await approval, and those approved."""
        approved = tuple(self._forms.list())
        known = {form.form for form in approved}
        named: dict[str, list[str]] = {}
        for consent in self._stored_consents(staff, ""):
            for key in form_keys(consent):
                if key not in known:
                    named.setdefault(key, []).append(f"Consent/{consent.get('id')}")
        awaiting = tuple(AwaitingForm(key, tuple(ids)) for key, ids in sorted(named.items()))
        return FormsView(awaiting, approved)

    def approve_form(
        self, staff: StaffPrincipal, form: str, title: str, statements: Sequence[str]
    ) -> ApprovedForm:
        """A compliance officer's one approval of a form, with the statements it contains."""
        require_role(staff, Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR)
        if not title.strip():
            raise InvalidRequest("give the form's title as printed on it")
        return self._forms.approve(form, title.strip(), statements, staff.username)

    def consents(self, staff: StaffPrincipal, patient: str, now: datetime) -> list[ConsentLine]:
        """Every stored consent (or one patient's), each with the §2.31 problems that stop
        the engine relying on it, named as the API's validation names them."""
        resources = self._stored_consents(staff, patient)
        with unit_of_work(self._engine, writes=False) as session:
            repository = ResourceRepository(session)
            return [
                _consent_line(r, consent_warnings(session, r, now, _recorder(repository, r)))
                for r in resources
            ]

    def revoke_consent(
        self, staff: StaffPrincipal, consent_id: str, version: int, received: str
    ) -> None:
        """Record the patient's written revocation (C6): the consent becomes `inactive` and
        carries the date the revocation was received, as of the version the officer saw, on
        behalf of the program permitted to disclose under it."""
        require_role(staff, Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR)
        day = received.strip()
        if _bound(day, 0) is None or len(day) != len("YYYY-MM-DD"):
            raise InvalidRequest("give the date the written revocation was received")
        stored = self._resources.read("Consent", consent_id, _as_reviewer(staff))
        if stored.content is None:
            raise ResourceNotFound(f"Consent/{consent_id[:64]} is not known")
        consent: dict[str, Any] = orjson.loads(stored.content)
        if consent.get("status") != "active":
            raise BusinessRuleBroken(f"Consent/{consent_id[:64]} is not active")
        discloser = _disclosers(consent)[:1] or ("Organization/unassigned",)
        extensions = [*consent.get("extension", []), {"url": REVOCATION_RECEIVED, "valueDate": day}]
        revoked = {**consent, "status": "inactive", "extension": extensions}
        revoked.pop("meta", None)
        self._resources.update(
            "Consent",
            consent_id,
            revoked,
            _as_reviewer(staff, discloser[0]),
            if_match=f'W/"{version}"',
        )

    def _stored_consents(self, staff: StaffPrincipal, patient: str) -> list[dict[str, Any]]:
        require_role(staff, Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR)
        params = [("_count", "1000")]
        if patient.strip():
            params.append(("patient", _reference(patient, "Patient") or ""))
        bundle = self._resources.search("Consent", params, _as_reviewer(staff), base_url="")
        return [bb.plain(entry["resource"]) for entry in bundle.get("entry", [])]

    def _logged(self, query: LogQuery) -> list[Decision]:
        bundle = self._compliance.audit_events(query)
        return [_decision(bb.plain(entry["resource"])) for entry in bundle.get("entry", [])]

    def _chain_length(self) -> int:
        bundle = self._compliance.audit_events(LogQuery(count=1))
        total: int = bundle.get("total", 0)
        return total


def _recorder(repository: ResourceRepository, consent: dict[str, Any]) -> str | None:
    """Who recorded the stored consent, for whether it is its holder's record (C5)."""
    row = repository.current("Consent", str(consent.get("id")))
    return row.origin if row is not None else None


def _decision(event: dict[str, Any]) -> Decision:
    """A row back from its AuditEvent (interop.audit.events), the log's public form."""
    chain = event["entity"][-1]
    details = {d["type"]: d["valueString"] for d in chain.get("detail", [])}
    if event["outcome"] == UNREADABLE_OUTCOME:
        return Decision.unreadable(int(details["log-sequence"]))
    requester = event["agent"][0]
    patient = next(
        (
            e["what"]["reference"]
            for e in event["entity"]
            if e.get("role", {}).get("code") == "1" and "what" in e
        ),
        None,
    )
    records = [e for e in event["entity"][:-1] if e.get("role", {}).get("code") == "4"]
    labels = records[0].get("securityLabel", []) if records else []
    return Decision(
        seq=int(details["log-sequence"]),
        recorded=event["recorded"],
        requester=requester["who"]["reference"],
        client_id=requester.get("altId", ""),
        interaction=event["subtype"][0]["code"],
        patient=patient,
        purposes=tuple(
            c["code"] for p in event.get("purposeOfEvent", []) for c in p.get("coding", [])
        ),
        released=event["outcome"] == "0" and details.get("rule") != REVIEW_RULE,
        rule=details.get("rule", ""),
        consent=chain.get("what", {}).get("reference"),
        provision=details.get("consent-provision"),
        resources=tuple(e["what"]["reference"] for e in records),
        labels=tuple(label["code"] for label in labels),
        emergency={
            key.removeprefix("emergency-"): value
            for key, value in details.items()
            if key.startswith("emergency-")
        },
    )


_CSV_COLUMNS = (
    "seq",
    "recorded",
    "outcome",
    "rule",
    "recipient",
    "client_id",
    "patient",
    "purposes",
    "consent",
    "provision",
    "records",
    "labels",
)


def decisions_csv(decisions: Iterable[Decision]) -> str:
    """The rows as CSV for a spreadsheet; cells that start like a formula are quoted."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for d in decisions:
        cells = (
            d.seq,
            d.recorded,
            _outcome(d),
            d.rule,
            d.requester,
            d.client_id,
            d.patient or "",
            " ".join(d.purposes),
            d.consent or "",
            d.provision or "",
            " ".join(d.resources),
            " ".join(d.labels),
        )
        writer.writerow([_cell(value) for value in cells])
    return out.getvalue()


def _outcome(d: Decision) -> str:
    if not d.readable:
        return "unreadable"
    return "signed off" if d.is_review else "released" if d.released else "withheld"


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _reference(text: str, kind: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    return text if text.startswith(f"{kind}/") else f"{kind}/{text}"


def _bound(text: str, end: int) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        return parse_range(text)[end]
    except ValueError as malformed:
        raise InvalidRequest(f"{text[:40]!r} is not a date (YYYY-MM-DD)") from malformed


def require_role(staff: StaffPrincipal, *roles: Role) -> None:
    """The services check the role too, so no page wired to the wrong dependency leaks."""
    if staff.role not in roles:
        raise Forbidden("this needs the role " + " or ".join(role.value for role in roles))


def _as_reviewer(staff: StaffPrincipal, on_behalf_of: str = "Organization/unassigned") -> Requester:
    """A compliance officer works for the operating program itself, for its operations: what
    they read is use within the program (logged), what they write is the holding program's."""
    return Requester(
        client_id=f"staff:{staff.username}",
        organization=on_behalf_of,
        scopes=parse_scopes("system/Consent.rus"),
        purposes=("HOPERAT",),
        emergency=None,
        part2_program=False,
        covered_entity=True,
        first_party=True,
    )


def _consent_line(consent: dict[str, Any], warnings: Sequence[Issue]) -> ConsentLine:
    provisions = list(_provisions(consent.get("provision")))
    recipients = [
        actor.get("reference", {})
        for provision in provisions
        for actor in provision.get("actor", [])
        if any(c.get("code") == "IRCP" for c in actor.get("role", {}).get("coding", []))
    ]
    ends = [str(p["period"]["end"]) for p in provisions if p.get("period", {}).get("end")]
    return ConsentLine(
        id=str(consent.get("id", "")),
        version=int(consent.get("meta", {}).get("versionId", "1")),
        patient=str(consent.get("patient", {}).get("reference", "")),
        status=str(consent.get("status", "")),
        disclosers=_disclosers(consent),
        recipients=tuple(str(r.get("reference") or r.get("display") or "") for r in recipients),
        purposes=tuple(
            sorted({str(p.get("code")) for pr in provisions for p in pr.get("purpose", [])})
        ),
        expires=min(ends) if ends else None,
        problems=tuple(issue.diagnostics for issue in warnings),
        revocation_received=next(
            (
                str(e.get("valueDate"))
                for e in consent.get("extension", [])
                if e.get("url") == REVOCATION_RECEIVED
            ),
            None,
        ),
    )


def _provisions(provision: Any) -> Iterable[dict[str, Any]]:
    """The provision tree, root first, every depth."""
    if not isinstance(provision, dict):
        return
    yield provision
    for nested in provision.get("provision", []):
        yield from _provisions(nested)


def _disclosers(consent: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(o["reference"]) for o in consent.get("organization", []) if o.get("reference"))
