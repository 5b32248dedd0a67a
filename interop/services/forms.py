"""Consent forms approved once by compliance staff (PART2.md C9).

Whether a signed form states the patient's right to revoke (§2.31(a)(6)), that the records
may be redisclosed under HIPAA (`redisclosure-risk`: §2.31(a)(10)(i) for TPO consents, and
§2.31(a)(4)(iii) for any consent relied on to disclose to a covered entity or business
associate for treatment, payment or operations) and the consequences of refusing to sign
(§2.31(a)(10)(ii), TPO consents) is a fact about the form, not about each consent signed on
it: staff read the form once and record which of these statements it contains. Consents name
their form by `policy.uri`, the signed form's attachment URL, or `sourceReference`;
`interop.services.directives` reads each consent with the approvals recorded here, and nothing
a consent says of its own form stands in for them.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from interop.services.errors import InvalidRequest
from interop.store import consents as store
from interop.store.database import unit_of_work
from interop.store.tables import ConsentFormRow
from mappings.consent import REDISCLOSURE_RISK, REFUSAL_CONSEQUENCES, RIGHT_TO_REVOKE

STATEMENTS = (RIGHT_TO_REVOKE, REDISCLOSURE_RISK, REFUSAL_CONSEQUENCES)
"""The §2.31 statements a form can be approved as containing, in the order of the rule."""


@dataclass(frozen=True, slots=True)
class ApprovedForm:
    """One approval: the form's key, its title, the statements it contains, who and when."""

    form: str
    title: str
    statements: tuple[str, ...]
    approved_by: str
    approved_at: datetime


class ConsentForms:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def approve(
        self, form: str, title: str, statements: Sequence[str], approved_by: str
    ) -> ApprovedForm:
        """Approve a form (again, replacing what an earlier approval said it contains)."""
        key = form.strip()
        if not key or len(key) > 1024:
            raise InvalidRequest("a form is named by a URI or canonical of 1 to 1024 characters")
        unknown = sorted(set(statements) - set(STATEMENTS))
        if unknown:
            raise InvalidRequest(
                f"unknown statements {', '.join(unknown)}; known: {', '.join(STATEMENTS)}"
            )
        ordered = [code for code in STATEMENTS if code in statements]
        with unit_of_work(self._engine) as session:
            row = store.approve_form(session, key, title, ordered, approved_by, self._clock())
            return _approved(row)

    def is_approved(self, form: str) -> bool:
        """Whether the form is approved already: approving it again replaces the approval."""
        with unit_of_work(self._engine, writes=False) as session:
            return any(row.form == form.strip() for row in store.approved_forms(session))

    def list(self) -> list[ApprovedForm]:
        """Every approved form, by key."""
        with unit_of_work(self._engine, writes=False) as session:
            return [_approved(row) for row in store.approved_forms(session)]


def _approved(row: ConsentFormRow) -> ApprovedForm:
    return ApprovedForm(
        form=row.form,
        title=row.title,
        statements=tuple(row.statements.split()),
        approved_by=row.approved_by,
        approved_at=row.approved_at,
    )
