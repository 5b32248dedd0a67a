"""Whether a requester has a treating provider relationship with a patient (42 CFR §2.11).

§2.11 (2024): a treating provider relationship exists when the patient agrees to be diagnosed,
evaluated or treated (or to accept consultation) by a person, and the person undertakes or
agrees to undertake it, whether or not they have met. A general designation of an
intermediary's member participants reaches only such participants (§2.31(a)(4)(ii)(B)), so
the gate asks this before relying on one. The evidence is what the store holds for the
patient, each a record of care the organization took on: an episode of care it manages, a care
team it is a member of, an encounter it provided, a referral Task it accepted or carried out.
A referral merely sent to it is no agreement and does not count; nor does anything cancelled,
rejected or entered in error.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
from sqlmodel import Session

from interop.store import consents as store
from interop.store.repository import ResourceRepository
from interop.store.search_params import parse_reference

_EVIDENCE: Final[tuple[tuple[str, str, tuple[str, ...], frozenset[str]], ...]] = (
    (
        "EpisodeOfCare",
        "patient",
        ("managingOrganization",),
        frozenset({"planned", "waitlist", "active", "onhold", "finished"}),
    ),
    ("CareTeam", "patient", ("participant.member",), frozenset({"proposed", "active", "inactive"})),
    (
        "Encounter",
        "patient",
        ("serviceProvider",),
        frozenset({"planned", "arrived", "triaged", "in-progress", "onleave", "finished"}),
    ),
    ("Task", "patient", ("owner",), frozenset({"accepted", "in-progress", "on-hold", "completed"})),
)
"""(type, patient search parameter, elements naming the provider, statuses that show care
undertaken)."""


def treats(session: Session, patient: str, organization: str) -> bool:
    """Whether the store shows `organization` undertaking the patient's care (§2.11)."""
    kind, _, ident = patient.partition("/")
    if kind != "Patient" or not ident:
        return False
    for resource_type, param, elements, statuses in _EVIDENCE:
        contents = store.referring(session, resource_type, param, "Patient", [ident])
        resources = (orjson.loads(content) for content in contents)
        if any(undertakes(r, elements, statuses, organization) for r in resources):
            return True
    return False


_WORKED_THROUGH: Final = (
    ("EpisodeOfCare", ("managingOrganization",)),
    ("Task", ("requester", "owner")),
)
"""(type naming the patient by `patient`, elements naming the programs that work it)."""


def works_with(session: Session, patient_id: str, programs: frozenset[str]) -> bool:
    """Whether one of `programs` works with the client: it recorded the client or a record of
    theirs, manages an episode of theirs or is a party to a referral of theirs, in any status
    (a case manager follows a declined referral up too). Staff of one program hosted here do
    not browse another's clients (README, "Staff console"), whatever the gate would release."""
    latest = ResourceRepository(session).latest("Patient", patient_id)
    if latest is not None and programs & {latest.origin, *latest.custodians}:
        return True
    for resource_type, elements in _WORKED_THROUGH:
        for content, origin in store.recorded_referring(
            session, resource_type, "patient", "Patient", [patient_id]
        ):
            if origin in programs or _names_any(orjson.loads(content), elements, programs):
                return True
    return False


def _names_any(
    resource: Mapping[str, Any], elements: tuple[str, ...], programs: frozenset[str]
) -> bool:
    return any(
        _local(reference) in programs
        for element in elements
        for reference in _references(resource, element.split("."))
    )


def undertakes(
    resource: Mapping[str, Any],
    elements: tuple[str, ...],
    statuses: frozenset[str],
    organization: str,
) -> bool:
    """Whether one record names the organization as the provider, in a status of care taken on."""
    if resource.get("status") not in statuses:
        return False
    return _names_any(resource, elements, frozenset({organization}))


def _references(value: Any, path: list[str]) -> Iterable[str]:
    if not path:
        if isinstance(value, Mapping) and isinstance(value.get("reference"), str):
            yield value["reference"]
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, Mapping) and path[0] in item:
            yield from _references(item[path[0]], path[1:])


def _local(reference: str) -> str | None:
    parsed = parse_reference(reference)
    return None if parsed is None else f"{parsed[0]}/{parsed[1]}"
