"""One cheap query telling whether anything the gate keeps between requests was read from has
changed: a counter per watched kind of record (change_counter), bumped by every transaction
that wrote one, as it commits.

Bumped at commit, in name order, so that counters move in commit order (a sequence's keys do
not, on PostgreSQL) and two writers never wait for each other's counters in opposite orders;
the row lock is held only for the commit itself. A transaction that wrote a watched kind sees
the counters as they were before it: what it reads of that kind must not be kept for others
(`written_here`), since it may yet roll back, nor taken from what others keep, since it would
miss its own writes.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import event, insert, select, update
from sqlmodel import Session

from interop.store.tables import COUNTER_TABLE

CONSENT_FACT_TYPES: Final = (
    "Consent",
    "Patient",
    "RelatedPerson",
    "Provenance",
    "QuestionnaireResponse",
)
"""What a patient's directives are read from (interop.services.directives); a consent's
signed form may be a QuestionnaireResponse naming the approved Questionnaire (PART2.md C9)."""
CONSENT_FORMS: Final = "consent-forms"
"""The counter of consent form approvals (interop.store.consents.approve_form)."""
CONSENT_HOLDERS: Final = "consent-holders"
"""The counter of changes to who records consents for itself (interop.store.consents.
local_authors): staff accounts and first-party registrations, added or switched on or off."""
ORGANIZATIONS: Final = "Organization"
CONSENT_FACTS: Final = (*CONSENT_FACT_TYPES, CONSENT_FORMS, CONSENT_HOLDERS)
WATCHED: Final = frozenset((ORGANIZATIONS, *CONSENT_FACTS))

_WRITTEN: Final = "interop_written_kinds"
_COUNTERS: Final = select(COUNTER_TABLE.c.name, COUNTER_TABLE.c.n)
"""Built once: the per-request cost is then the query alone."""


def note_write(session: Session, kind: str) -> None:
    """Record that this transaction wrote a record of `kind` (a resource type, CONSENT_FORMS
    or CONSENT_HOLDERS); its counter moves when the transaction commits."""
    if kind in WATCHED:
        session.info.setdefault(_WRITTEN, Counter())[kind] += 1


def written_here(session: Session, kinds: tuple[str, ...]) -> bool:
    """Whether this transaction wrote any of `kinds` so far."""
    written: Counter[str] | None = session.info.get(_WRITTEN)
    return written is not None and any(written[kind] for kind in kinds)


@event.listens_for(Session, "before_commit")
def _bump_counters(session: Session) -> None:
    written: Counter[str] = session.info.pop(_WRITTEN, Counter())
    for kind in sorted(written):
        bumped = session.execute(
            update(COUNTER_TABLE)
            .where(COUNTER_TABLE.c.name == kind)
            .values(n=COUNTER_TABLE.c.n + 1)
        )
        if bumped.rowcount == 0:  # type: ignore[attr-defined]  # a kind added since the migration
            session.execute(insert(COUNTER_TABLE).values(name=kind, n=1))


@event.listens_for(Session, "after_rollback")
def _forget_writes(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


@dataclass(frozen=True, slots=True)
class GateMarkers:
    organizations: int
    """Moves with every committed write of any Organization, by any process."""
    consent_facts: tuple[int, ...]
    """Moves whenever anything a patient's directives are read from is written."""
    sources: int
    """Moves with every committed write of a QuestionnaireResponse (a signed form's source)."""


def gate_markers(session: Session) -> GateMarkers:
    """What the gate's kept facts were read from, now: one query per request."""
    counters: dict[str, Any] = {name: n for name, n in session.connection().execute(_COUNTERS)}
    return GateMarkers(
        organizations=counters.get(ORGANIZATIONS, 0),
        consent_facts=tuple(counters.get(kind, 0) for kind in CONSENT_FACTS),
        sources=counters.get("QuestionnaireResponse", 0),
    )
