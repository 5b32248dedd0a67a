"""Generated worlds for the leak suite (test_leaks.py): programs, their clients and records,
shared referrals and consents, built through the FHIR API with each program's own token, and
an oracle of what an observer must, must not, or may see (PART2.md P1, P2).

Every record carries a unique marker in its text so that a leak of its content shows up as
the marker anywhere in a response.
"""

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import strategies as st

from interop.app import create_app
from interop.settings import Settings
from tests.builders import PLACER, care_plan, part2_consent, patient, service_request
from tests.conftest import RegisteredPartner, approve_part2_form, bearer, register_partner
from tests.interop.disclosure.conftest import make
from tests.interop.disclosure.test_gate import referral_task

FHIR_JSON = {"Content-Type": "application/fhir+json"}
RECORD_TYPES = ("CarePlan", "Goal", "Condition", "Task", "ServiceRequest", "EpisodeOfCare")
SUD = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUD"}
OBSERVER = -1  # the index that names the observer as a referral's owner


class Sight(Enum):
    """What the observer may learn of a record."""

    SEE = "must come through"
    HIDE = "must behave as if it did not exist"
    EITHER = "depends on the consent engine's finer rules"


@dataclass(frozen=True)
class RecordPlan:
    writer: int
    resource_type: str
    client: int  # whose client it is about: the index of the program that registered them
    labelled: bool


@dataclass(frozen=True)
class ReferralPlan:
    requester: int
    owner: int  # OBSERVER for the observer itself
    owner_writes: bool  # the owner then moves it to "accepted" (a version of its own)


@dataclass(frozen=True)
class WorldPlan:
    part2: tuple[bool, ...]  # one flag per program
    observer_part2: bool
    records: tuple[RecordPlan, ...]
    referrals: tuple[ReferralPlan, ...]
    consents: frozenset[tuple[int, int]]  # (client, discloser) pairs naming the observer


@st.composite
def world_plans(draw: st.DrawFn) -> WorldPlan:
    part2 = tuple(draw(st.lists(st.booleans(), min_size=2, max_size=3)))
    programs = st.integers(0, len(part2) - 1)
    records = draw(
        st.lists(
            st.builds(RecordPlan, programs, st.sampled_from(RECORD_TYPES), programs, st.booleans()),
            min_size=1,
            max_size=5,
        )
    )
    referrals = draw(
        st.lists(
            st.builds(
                ReferralPlan, programs, st.one_of(programs, st.just(OBSERVER)), st.booleans()
            ).filter(lambda r: r.requester != r.owner),
            max_size=2,
        )
    )
    # A program records consents only for clients it may see: its own, or another program's
    # whose records are not Part 2 data (a stranger's Consent is refused, test_bearer.py).
    drawn = draw(st.frozensets(st.tuples(programs, programs), max_size=3))
    consents = frozenset(
        (client, discloser)
        for client, discloser in drawn
        if client == discloser or not part2[client]
    )
    return WorldPlan(part2, draw(st.booleans()), tuple(records), tuple(referrals), consents)


@dataclass
class Stored:
    """One record as written, with what the oracle needs."""

    reference: str
    marker: str
    custodians: tuple[str, ...]
    client: int
    labelled: bool
    sight: Sight = Sight.EITHER

    @property
    def resource_type(self) -> str:
        return self.reference.split("/")[0]

    @property
    def id(self) -> str:
        return self.reference.split("/")[1]


@dataclass
class World:
    anonymous: TestClient
    plan: WorldPlan
    programs: list[RegisteredPartner]
    writers: list[TestClient]
    observer: RegisteredPartner
    as_observer: TestClient
    harness: TestClient
    clients: list[str] = field(default_factory=list)  # Patient references, one per program
    records: list[Stored] = field(default_factory=list)

    def hidden(self) -> list[Stored]:
        return [r for r in self.records if r.sight is Sight.HIDE]

    def seen(self) -> list[Stored]:
        return [r for r in self.records if r.sight is Sight.SEE]

    def writer_of(self, stored: Stored) -> TestClient:
        """A client that reads everything: the operating program's own EHR (first party)."""
        return self.harness


@contextmanager
def fresh_app() -> Iterator[TestClient]:
    """An app over an empty SQLite database of its own, so each example starts from nothing."""
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite:///{folder}/leaks.sqlite3", public_base_url="http://testserver"
        )
        with TestClient(create_app(settings)) as anonymous:
            yield anonymous


def marker() -> str:
    return "Zeta" + uuid.uuid4().hex[:12]


def acting(anonymous: TestClient, partner: RegisteredPartner) -> TestClient:
    acting_client = TestClient(anonymous.app)
    acting_client.headers["Authorization"] = bearer(anonymous, partner, scope="system/*.cruds")
    return acting_client


def record_body(
    resource_type: str, client_ref: str, writer: str, secret: str, labelled: bool
) -> dict[str, Any]:
    """A valid record of `resource_type` about `client_ref`, carrying `secret` in its text."""
    subject = {"reference": client_ref}
    identifier = [{"system": PLACER, "value": secret}]
    body: dict[str, Any]
    if resource_type == "CarePlan":
        body = care_plan(client_ref, title=secret, identifier=identifier)
    elif resource_type == "Goal":
        body = {
            "resourceType": "Goal",
            "identifier": identifier,
            "lifecycleStatus": "active",
            "description": {"text": secret},
            "subject": subject,
        }
    elif resource_type == "Condition":
        body = {
            "resourceType": "Condition",
            "identifier": identifier,
            "code": {"text": secret},
            "subject": subject,
        }
    elif resource_type == "Task":
        body = {
            "resourceType": "Task",
            "identifier": identifier,
            "status": "in-progress",
            "intent": "plan",
            "description": secret,
            "for": subject,
            "requester": {"reference": writer},
            "owner": {"reference": writer},
            "authoredOn": "2026-11-02T09:30:00Z",
        }
    elif resource_type == "ServiceRequest":
        body = service_request(client_ref, placer=secret, requester=writer)
        body["note"] = [{"text": secret}]
    else:
        body = {
            "resourceType": "EpisodeOfCare",
            "identifier": identifier,
            "status": "active",
            "patient": subject,
            "managingOrganization": {"reference": writer, "display": secret},
        }
    if labelled:
        body["meta"] = {"security": [SUD]}
    return body


def build(anonymous: TestClient, plan: WorldPlan) -> World:
    """Writes the world through the FHIR API, each record with its writer's own token."""
    programs = [
        register_partner(anonymous, name=f"Program {n} {uuid.uuid4().hex[:6]}", part2_program=p)
        for n, p in enumerate(plan.part2)
    ]
    writers = [acting(anonymous, program) for program in programs]
    observer = register_partner(
        anonymous, name=f"Observer {uuid.uuid4().hex[:6]}", part2_program=plan.observer_part2
    )
    harness = register_partner(anonymous, name=f"Harness {uuid.uuid4().hex[:6]}", first_party=True)
    world = World(
        anonymous,
        plan,
        programs,
        writers,
        observer,
        acting(anonymous, observer),
        acting(anonymous, harness),
    )
    for program, writer in zip(programs, writers, strict=True):
        secret = marker()
        managed = {"reference": program.organization}
        person = make(writer, patient(family=secret, mrn=secret, managingOrganization=managed))
        reference = f"Patient/{person['id']}"
        world.clients.append(reference)
        world.records.append(
            Stored(reference, secret, (program.organization,), len(world.clients) - 1, False)
        )
    for record in plan.records:
        secret = marker()
        organization = programs[record.writer].organization
        body = record_body(
            record.resource_type,
            world.clients[record.client],
            organization,
            secret,
            record.labelled,
        )
        created = make(writers[record.writer], body)
        world.records.append(
            Stored(
                f"{record.resource_type}/{created['id']}",
                secret,
                (organization,),
                record.client,
                record.labelled,
            )
        )
    for referral in plan.referrals:
        world.records.append(_refer(world, referral))
    approve_part2_form(anonymous)
    for client, discloser in sorted(plan.consents):
        make(
            writers[discloser],
            part2_consent(
                world.clients[client], programs[discloser].organization, observer.organization
            ),
        )
    for stored in world.records:
        stored.sight = sight(world, stored)
    return world


def _refer(world: World, referral: ReferralPlan) -> Stored:
    """A referral Task written by its requester and owned by another program (or the
    observer), optionally moved on by the owner: a record with two custodians."""
    requester = world.programs[referral.requester]
    owner = world.observer if referral.owner == OBSERVER else world.programs[referral.owner]
    client = referral.requester
    secret = marker()
    body = referral_task(world.clients[client], requester.organization, owner.organization)
    body["description"] = secret
    created = make(world.writers[referral.requester], body)
    custodians: tuple[str, ...] = (requester.organization,)
    if referral.owner_writes:
        owner_client = (
            world.as_observer if referral.owner == OBSERVER else world.writers[referral.owner]
        )
        moved = owner_client.put(
            f"/fhir/Task/{created['id']}",
            json={**{k: v for k, v in created.items() if k != "meta"}, "status": "accepted"},
            headers=FHIR_JSON,
        )
        if moved.status_code == 200:
            custodians = (requester.organization, owner.organization)
    return Stored(f"Task/{created['id']}", secret, custodians, client, False)


def sight(world: World, stored: Stored) -> Sight:
    """The oracle: PART2.md P1 on recorded origins, P2 deny by default, for the observer."""
    me = world.observer.organization
    part2 = {p.organization: flag for p, flag in zip(world.programs, world.plan.part2, strict=True)}
    part2[me] = world.plan.observer_part2
    others = [c for c in stored.custodians if c != me]
    protected = {c for c in others if part2[c]}
    if me in stored.custodians and not protected:
        return Sight.SEE  # its own record: use, not disclosure
    if not stored.labelled and not protected:
        return Sight.SEE  # not Part 2 data: ordinary sharing
    consented = {
        world.programs[discloser].organization
        for client, discloser in world.plan.consents
        if client == stored.client
    }
    if not consented:
        return Sight.HIDE  # Part 2 data and no consent naming the observer for this client
    if stored.resource_type == "Patient" or stored.labelled or len(stored.custodians) > 1:
        return Sight.EITHER
    if protected <= consented:
        return Sight.SEE
    return Sight.HIDE if not (protected & consented) else Sight.EITHER


def as_unknown(response: Any, hidden_id: str, unknown_id: str) -> tuple[int, str, str, str]:
    """What a response tells, with the id asked for replaced: status, body, ETag, Location."""
    return (
        response.status_code,
        response.text.replace(hidden_id, "<id>").replace(unknown_id, "<id>"),
        response.headers.get("etag", ""),
        response.headers.get("location", ""),
    )
