"""How far a provision's `data` reaches: R4 consent-data-meaning (http://hl7.org/fhir/
consent-data-meaning), "instance": the instance of the resource; "related": the instance and
instances it refers to; "dependents": the instance and instances that refer to it;
"authoredby": instances authored by the referenced party.

`related` and `dependents` used to reach what `instance` reaches (finding 2): a refusal of a
Task "and related" left the ServiceRequest it focuses and the Patient it is for readable,
and a refusal of a ServiceRequest "and dependents" left the Task pointing at it readable.
"""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import ConsentDirective, Outcome, decide
from mappings.consent import (
    directive_from_fhir,
    references_in,
    related_instances,
    with_related_reaches,
)
from tests.consent import (
    AS_OF,
    CLINIC,
    WORLD,
    consent,
    item,
    permit,
    provision,
    request,
)

TASK = "Task/t"
ORDER = "ServiceRequest/s"
PATIENT_RECORD = "Patient/sud-patient-1"
OTHER = "Condition/other"
TASK_REFERS_TO = frozenset({ORDER, PATIENT_RECORD, CLINIC})


def _directives(
    meaning: str, target: str, reaches: frozenset[str] | None = TASK_REFERS_TO, kind: str = "deny"
) -> list[ConsentDirective]:
    """The clinic's consent to SUD records, with a nested deny (or a permit of its own, for
    `kind` permit) of `target` as `meaning` reaches; `reaches` is what `target` refers to,
    as the store resolved it (None: not read)."""
    if kind == "deny":
        root = permit(children=[provision("deny", data=[(meaning, target)])])
    else:
        root = permit(labels=[], data=[(meaning, target)])
    directive = directive_from_fhir(consent(root=root), facts=WORLD)
    resolved = {target: reaches} if reaches is not None else {}
    return [with_related_reaches(directive, resolved)]


def _decide(
    directives: list[ConsentDirective], record: str, refers_to: tuple[str, ...] | None = ()
) -> Outcome:
    kind = record.split("/")[0]
    return decide(
        request(data=item(kind, reference=record, related=refers_to)), directives, AS_OF
    ).outcome


class TestDenies:
    def test_instance_reaches_the_record_alone(self) -> None:
        refusal = _directives("instance", TASK)

        assert _decide(refusal, TASK) is Outcome.DENY
        assert _decide(refusal, ORDER) is Outcome.PERMIT
        assert _decide(refusal, "Task/u", (TASK,)) is Outcome.PERMIT

    def test_related_reaches_what_the_instance_refers_to(self) -> None:
        """The tester's case: a refusal of Task/t "and related" reaches the ServiceRequest it
        focuses and the Patient it is for."""
        refusal = _directives("related", TASK)

        assert _decide(refusal, TASK) is Outcome.DENY
        assert _decide(refusal, ORDER) is Outcome.DENY
        assert _decide(refusal, PATIENT_RECORD) is Outcome.DENY
        assert _decide(refusal, OTHER) is Outcome.PERMIT
        assert _decide(refusal, "Task/u", (TASK,)) is Outcome.PERMIT, "that is dependents"

    def test_related_of_an_instance_that_could_not_be_read_reaches_the_instance(self) -> None:
        refusal = _directives("related", TASK, reaches=None)

        assert _decide(refusal, TASK) is Outcome.DENY
        assert _decide(refusal, ORDER) is Outcome.PERMIT

    def test_related_naming_a_version_reaches_the_record(self) -> None:
        root = permit(children=[provision("deny", data=[("related", f"{TASK}/_history/1")])])
        directive = directive_from_fhir(consent(root=root), facts=WORLD)
        refusal = [with_related_reaches(directive, {TASK: frozenset({ORDER})})]

        assert _decide(refusal, TASK) is Outcome.DENY
        assert _decide(refusal, ORDER) is Outcome.DENY
        assert _decide(refusal, OTHER) is Outcome.PERMIT

    def test_dependents_reaches_what_refers_to_the_instance(self) -> None:
        """The tester's case: a refusal of ServiceRequest/s "and dependents" reaches the Task
        pointing at it."""
        refusal = _directives("dependents", ORDER)

        assert _decide(refusal, ORDER) is Outcome.DENY
        assert _decide(refusal, TASK, (ORDER, PATIENT_RECORD)) is Outcome.DENY
        assert _decide(refusal, "Task/u", (PATIENT_RECORD,)) is Outcome.PERMIT
        assert _decide(refusal, PATIENT_RECORD, ()) is Outcome.PERMIT, "that is related"

    def test_dependents_applies_where_the_request_does_not_say_what_the_record_refers_to(
        self,
    ) -> None:
        """C8: what the engine is not told cannot keep a refusal from applying."""
        assert _decide(_directives("dependents", ORDER), TASK, None) is Outcome.DENY

    def test_a_record_named_by_identifier_only_is_refused_wherever_it_may_be(self) -> None:
        root = permit(children=[provision("deny")])
        root["provision"][0]["data"] = [
            {"meaning": "instance", "reference": {"identifier": {"system": "urn:x", "value": "1"}}}
        ]
        refusal = [directive_from_fhir(consent(root=root), facts=WORLD)]

        assert _decide(refusal, TASK) is Outcome.DENY

    def test_authoredby_reaches_what_the_party_authored(self) -> None:
        root = permit(children=[provision("deny", data=[("authoredby", "Practitioner/dr")])])
        refusal = [directive_from_fhir(consent(root=root), facts=WORLD)]

        def ask(authors: tuple[str, ...]) -> Outcome:
            data = item(reference=TASK, authors=authors)
            return decide(request(data=data), refusal, AS_OF).outcome

        assert ask(("Practitioner/dr",)) is Outcome.DENY
        assert ask(("Practitioner/other",)) is Outcome.PERMIT


class TestPermits:
    """A permit never reaches more than it says, nor on facts it is not given."""

    def test_related_permit_reaches_its_instance_alone(self) -> None:
        """What the instance refers to is read when the directive is and may have changed
        since; a permit relying on it could release what the instance no longer names."""
        consent_ = _directives("related", TASK, kind="permit")

        assert _decide(consent_, TASK) is Outcome.PERMIT
        assert _decide(consent_, ORDER) is Outcome.DENY

    def test_dependents_permit_reaches_what_refers_to_its_instance(self) -> None:
        consent_ = _directives("dependents", ORDER, kind="permit")

        assert _decide(consent_, ORDER) is Outcome.PERMIT
        assert _decide(consent_, TASK, (ORDER,)) is Outcome.PERMIT
        assert _decide(consent_, TASK, None) is Outcome.DENY
        assert _decide(consent_, "Task/u", (PATIENT_RECORD,)) is Outcome.DENY


class TestReadingReferences:
    def test_references_in_a_record(self) -> None:
        task: dict[str, Any] = {
            "resourceType": "Task",
            "focus": {"reference": ORDER},
            "for": {"reference": f"{PATIENT_RECORD}/_history/2"},
            "owner": {"reference": "https://elsewhere.example.org/fhir/Organization/o"},
            "basedOn": [{"reference": "#contained"}, {"reference": "urn:uuid:1"}],
            "contained": [
                {"resourceType": "Provenance", "agent": [{"who": {"reference": CLINIC}}]}
            ],
            "extension": [{"url": "x", "valueReference": {"reference": "Goal/g"}}],
        }

        assert references_in(task) == {ORDER, PATIENT_RECORD, CLINIC, "Goal/g"}

    def test_only_the_related_data_of_denies_is_resolved(self) -> None:
        root = permit(
            data=[("related", "CarePlan/permitted")],
            children=[
                provision("deny", data=[("related", TASK), ("dependents", ORDER)]),
                provision(None, data=[("related", "Task/untyped")]),
            ],
        )
        directive = directive_from_fhir(consent(root=root), facts=WORLD)

        assert related_instances(directive) == {TASK, "Task/untyped"}


RECORDS = ("Task/t", "ServiceRequest/s", "Patient/sud-patient-1", "Goal/g", "Condition/c")
MEANINGS = ("instance", "related", "dependents")
graphs = st.fixed_dictionaries(
    {
        record: st.frozensets(st.sampled_from([r for r in RECORDS if r != record]), max_size=3)
        for record in RECORDS
    }
)


def _reaches(meaning: str, target: str, record: str, graph: dict[str, frozenset[str]]) -> bool:
    """The code system's definitions, restated."""
    if record == target:
        return True
    if meaning == "related":
        return record in graph[target]
    if meaning == "dependents":
        return target in graph[record]
    return False


@settings(max_examples=300, deadline=None)
@given(
    graphs,
    st.sampled_from(MEANINGS),
    st.sampled_from(RECORDS),
    st.sampled_from(RECORDS),
    st.booleans(),
)
def test_a_refusal_reaches_exactly_what_its_meaning_says(
    graph: dict[str, frozenset[str]], meaning: str, target: str, record: str, told: bool
) -> None:
    """Every record the meaning reaches is refused; no other is, except where the request
    does not say what the record refers to and the refusal depends on it (C8)."""
    refusal = _directives(meaning, target, reaches=graph[target])
    refers_to = tuple(sorted(graph[record])) if told else None

    denied = _decide(refusal, record, refers_to) is Outcome.DENY

    unknown = not told and meaning == "dependents" and record != target
    assert denied is (_reaches(meaning, target, record, graph) or unknown)


@settings(max_examples=300, deadline=None)
@given(graphs, st.sampled_from(MEANINGS), st.sampled_from(RECORDS), st.sampled_from(RECORDS))
def test_a_permit_never_reaches_more_than_its_meaning_says(
    graph: dict[str, frozenset[str]], meaning: str, target: str, record: str
) -> None:
    consent_ = _directives(meaning, target, reaches=graph[target], kind="permit")

    permitted = _decide(consent_, record, tuple(sorted(graph[record]))) is Outcome.PERMIT

    if permitted:
        assert _reaches(meaning, target, record, graph)


@pytest.mark.parametrize("meaning", MEANINGS)
def test_every_meaning_reaches_the_instance(meaning: str) -> None:
    assert _decide(_directives(meaning, TASK), TASK, None) is Outcome.DENY
    assert _decide(_directives(meaning, TASK, kind="permit"), TASK, None) is Outcome.PERMIT
