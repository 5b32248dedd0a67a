"""One cheap query telling whether anything a kept fact was read from has changed: the newest
version's key of each resource type (an index lookup each, on (resource_type, pk)), and the
state of the approved consent forms. Every write, by any process, moves one of them."""

from typing import Any, Final

from sqlalchemy import func, select
from sqlmodel import Session

from interop.store.tables import FORM_TABLE, VERSION_TABLE

CONSENT_FACT_TYPES: Final = ("Consent", "Patient", "RelatedPerson", "Provenance")
"""What a patient's directives are read from (interop.services.directives)."""


def _newest(resource_type: str) -> Any:
    return (
        select(func.max(VERSION_TABLE.c.pk))
        .where(VERSION_TABLE.c.resource_type == resource_type)
        .scalar_subquery()
    )


_CONSENT_FACTS: Final = select(
    *(_newest(kind) for kind in CONSENT_FACT_TYPES),
    select(func.count()).select_from(FORM_TABLE).scalar_subquery(),
    select(func.max(FORM_TABLE.c.approved_at)).scalar_subquery(),
)
"""Built once: the per-request cost is then the query alone."""


def consent_facts_marker(session: Session) -> tuple[Any, ...]:
    """Changes whenever a Consent, Patient, RelatedPerson or Provenance is written, or a consent
    form is approved, anywhere."""
    return tuple(session.execute(_CONSENT_FACTS).one())
