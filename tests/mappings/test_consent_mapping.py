"""FHIR R4 Consent JSON <-> ConsentDirective, on the official examples and our own consents."""

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import (
    Actor,
    Coding,
    ConsentElement,
    ConsentKind,
    ConsentStatus,
    DataMeaning,
    DataReference,
    Identifier,
    PatientCapacity,
    ProvisionType,
    Signer,
    SignerRole,
    check,
    decide,
)
from consent import vocabulary as v
from mappings.consent import (
    ELEMENT_EXPRESSIONS,
    EXPIRATION_EVENT,
    EXTENSION_BASE,
    MAX_PROVISION_DEPTH,
    REDISCLOSURE_RISK,
    RIGHT_TO_REVOKE,
    ConsentFacts,
    directive_from_fhir,
    directive_problems_as_issues,
    directive_to_fhir,
)
from mappings.errors import InvalidResource, Issue
from mappings.fhir import validate
from tests.conftest import corpus
from tests.consent import (
    ALL_STATEMENTS,
    AS_OF,
    GUARDIAN,
    PATIENT,
    PATIENT_NAME,
    PROGRAM,
    WORLD,
    consent,
    form_stating,
    item,
    performer,
    permit,
    provision,
    request,
    restriction,
    tpo_consent,
)
from tests.consent.test_decisions import DECISION_CASES
from tests.mappings.conftest import corpus_params, example

E = ConsentElement
C1 = "C1"

# What each official R4 example lacks to be relied on under Part 2 (none has a signature by the
# patient on a signed form). Untyped provisions are denies (R4: an exception to the base
# policy; PART2.md C8), so the OPTOUT examples (Out, grantor, pkb, Emergency) and the OPTIN
# withholdings (notThem, notThis, notTime, notAuthor, and `basic`, written the same way) are
# refusals, which need only the patient's name, a signature and a date.
OFFICIAL_PROBLEMS: dict[str, list[tuple[str, ConsentElement]]] = {
    "Consent-consent-example-Emergency.json": [(C1, E.SIGNATURE)],
    "Consent-consent-example-Out.json": [(C1, E.SIGNATURE)],
    "Consent-consent-example-basic.json": [("C5", E.EXPIRATION), (C1, E.SIGNATURE)],
    "Consent-consent-example-grantor.json": [(C1, E.SIGNATURE)],
    "Consent-consent-example-notAuthor.json": [(C1, E.SIGNATURE)],
    "Consent-consent-example-notOrg.json": [(C1, E.SIGNATURE)],
    "Consent-consent-example-notThem.json": [(C1, E.SIGNATURE)],
    "Consent-consent-example-notThis.json": [(C1, E.SIGNATURE)],
    "Consent-consent-example-notTime.json": [("C5", E.EXPIRATION), (C1, E.SIGNATURE)],
    "Consent-consent-example-pkb.json": [(C1, E.SIGNATURE)],
    "Consent-consent-example-signature.json": [
        ("C5", E.EXPIRATION),
        (C1, E.PATIENT_NAME),
        (C1, E.PURPOSES),
        ("C9", E.REVOCATION_STATEMENT),
        (C1, E.SIGNATURE),
    ],
    "Consent-consent-example-smartonfhir.json": [
        ("C5", E.EXPIRATION),
        (C1, E.PATIENT_NAME),
        (C1, E.RECIPIENTS),
        (C1, E.PURPOSES),
        ("C9", E.REVOCATION_STATEMENT),
        (C1, E.SIGNATURE),
        ("C7", E.SIGNATURE),
    ],
}
OFFICIAL = corpus_params(("fhir-r4-examples",), pattern="Consent-*.json")
OUR_CONSENTS = [
    pytest.param(resource, id=f"{case.id}-{number}")
    for case in DECISION_CASES
    for number, resource in enumerate(case.consents)
]


def _load(path: Path) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(path.read_text())
    return resource


class TestOfficialExamples:
    @pytest.mark.corpus
    @pytest.mark.parametrize("path", OFFICIAL)
    def test_maps_and_names_what_part2_finds_missing(self, path: Path) -> None:
        directive = directive_from_fhir(_load(path))

        found = [(p.rule, p.element) for p in check(directive, AS_OF).problems]
        assert found == OFFICIAL_PROBLEMS[path.name]

    @pytest.mark.corpus
    def test_every_official_example_is_listed(self) -> None:
        names = {p.name for p in corpus("fhir-r4-examples").glob("Consent-*.json")}

        assert names == set(OFFICIAL_PROBLEMS)

    @pytest.mark.corpus
    @pytest.mark.parametrize("path", OFFICIAL)
    def test_round_trip(self, path: Path) -> None:
        directive = directive_from_fhir(_load(path))

        assert directive_from_fhir(directive_to_fhir(directive)) == directive

    @pytest.mark.corpus
    def test_nested_provisions_of_the_signature_example(self) -> None:
        directive = directive_from_fhir(_load(example("Consent-consent-example-signature.json")))

        assert directive.provision is not None
        # Untyped root over a permit: the opt-in base policy (a deny the engine keeps silent
        # towards whom the permit does not name).
        assert directive.provision.type is ProvisionType.DENY
        nested = directive.provision.provisions[0]
        assert nested.type is ProvisionType.PERMIT
        assert nested.actors == (
            Actor(Coding(v.PARTICIPATION_TYPE, "AUT"), "Practitioner/xcda-author"),
        )
        assert nested.classes == (Coding("urn:ietf:bcp:13", "application/hl7-cda+xml"),)
        assert [c.code for c in nested.codes] == ["34133-9", "18842-5"]
        assert directive.signers == (Signer(SignerRole.PATIENT, "Patient/72"),)
        assert directive.signed_at == datetime(
            2016, 5, 26, 0, 41, 10, tzinfo=timezone(timedelta(hours=-4))
        )

    @pytest.mark.corpus
    def test_data_reference_of_the_not_this_example(self) -> None:
        directive = directive_from_fhir(_load(example("Consent-consent-example-notThis.json")))

        assert directive.provision is not None
        assert directive.provision.data == (DataReference(DataMeaning.RELATED, "Task/example3"),)

    @pytest.mark.corpus
    def test_representative_of_the_smart_example(self) -> None:
        directive = directive_from_fhir(_load(example("Consent-consent-example-smartonfhir.json")))

        assert directive.signers == (Signer(SignerRole.REPRESENTATIVE, "RelatedPerson/peter"),)


class TestDs4pLabels:
    @pytest.mark.corpus
    @pytest.mark.parametrize(
        "name",
        ["extension-sec-label-basis.json", "extensions-sec-label-classifier.json"],
    )
    def test_restricted_alone_does_not_make_part2_data(self, name: str) -> None:
        """P1: SUD sensitivity or the 42CFRPart2 law label marks Part 2 data; R alone does not
        (the DS4P basis extension names the law but is not a label of its own)."""
        resource = _load(example(name, "fhir-r4-examples/ds4p-ig"))
        labels = tuple((c["system"], c["code"]) for c in resource["meta"]["security"])
        data = item("Observation", labels=labels, part2=False)

        assert decide(request(data=data), [], AS_OF).rules == ("P1",)

    @pytest.mark.corpus
    def test_our_labels_use_the_ds4p_systems(self) -> None:
        resource = _load(example("extension-sec-label-basis.json", "fhir-r4-examples/ds4p-ig"))
        security = resource["meta"]["security"][0]
        basis = security["extension"][0]["valueCoding"]

        assert (security["system"], security["code"]) == (v.CONFIDENTIALITY, v.RESTRICTED)
        assert (basis["system"], basis["code"]) == (v.ACT_CODE, v.LAW_42CFR_PART2)


class TestOurConsents:
    @pytest.mark.parametrize("resource", OUR_CONSENTS)
    def test_builders_write_valid_fhir_r4(self, resource: dict[str, Any]) -> None:
        validate(resource)

    @pytest.mark.parametrize("resource", OUR_CONSENTS)
    def test_round_trip_through_valid_fhir(self, resource: dict[str, Any]) -> None:
        directive = directive_from_fhir(resource)
        written = directive_to_fhir(directive)

        validate(written)
        assert directive_from_fhir(written) == directive


class TestElements:
    def test_general_consent(self) -> None:
        directive = directive_from_fhir(consent(), facts=WORLD)

        assert directive.id == "consent-general"
        assert directive.status is ConsentStatus.ACTIVE
        assert directive.patient == PATIENT
        assert directive.patient_name == PATIENT_NAME
        assert directive.disclosers == (Actor(None, PROGRAM),)
        assert directive.kind is ConsentKind.GENERAL
        assert directive.signed_at == datetime(2026, 1, 10, tzinfo=UTC)
        assert directive.signers == (Signer(SignerRole.PATIENT, PATIENT),)
        assert directive.expires_at == datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        assert directive.has_signed_form
        assert directive.signed_form == "https://forms.example.org/signed/consent-general.pdf"
        assert directive.form == form_stating(ALL_STATEMENTS)
        assert directive.form_approved
        assert directive.has_revocation_statement
        assert directive.has_redisclosure_statement
        assert not directive.has_refusal_consequences_statement

    def test_tpo_consent(self) -> None:
        directive = directive_from_fhir(tpo_consent(), facts=WORLD)

        assert directive.kind is ConsentKind.TPO
        assert directive.expiration_event == "none"
        assert directive.has_redisclosure_statement
        assert directive.has_refusal_consequences_statement
        assert directive.provision is not None
        assert directive.provision.actors[0].is_general_designation

    def test_patient_name_from_the_resolved_patient(self) -> None:
        directive = directive_from_fhir(consent(patient_name=None), patient_name="Alex T.")

        assert directive.patient_name == "Alex T."

    def test_the_referenced_patients_name_wins_over_the_display(self) -> None:
        # PART2.md table (a): the stored Patient's name, the reference's display as a fallback.
        assert directive_from_fhir(consent(), patient_name="Alex T.").patient_name == "Alex T."
        assert directive_from_fhir(consent()).patient_name == PATIENT_NAME

    def test_representative_with_relationship(self) -> None:
        resource = consent(performers=[performer(GUARDIAN, "GUARD")], capacity="lacks-capacity")

        directive = directive_from_fhir(resource)

        assert directive.patient_capacity is PatientCapacity.LACKS_CAPACITY
        assert directive.signers == (
            Signer(SignerRole.REPRESENTATIVE, GUARDIAN, Coding(v.ROLE_CODE, "GUARD")),
        )

    def test_statements_of_a_form_approved_as_its_source_reference(self) -> None:
        """C9: what the approval of the form says, never what the reference says of itself."""
        resource = consent(statements=None)
        resource["sourceReference"] = {
            "reference": "DocumentReference/signed-form",
            "extension": [
                {"url": EXTENSION_BASE + "consent-form-statement", "valueCode": RIGHT_TO_REVOKE}
            ],
        }
        approved = {"DocumentReference/signed-form": frozenset({REDISCLOSURE_RISK})}

        directive = directive_from_fhir(resource, facts=ConsentFacts(approved_forms=approved))

        assert directive.has_signed_form
        assert directive.signed_form == "DocumentReference/signed-form"
        assert directive.form_approved
        assert directive.has_redisclosure_statement
        assert not directive.has_revocation_statement

    def test_what_a_consent_says_of_its_own_form_is_not_read(self) -> None:
        resource = consent(statements=None)
        resource["sourceAttachment"] = {
            "title": "Signed 42 CFR Part 2 consent form",
            "extension": [
                {"url": EXTENSION_BASE + "consent-form-statement", "valueCode": code}
                for code in (RIGHT_TO_REVOKE, REDISCLOSURE_RISK)
            ],
        }

        directive = directive_from_fhir(resource, facts=WORLD)

        assert not directive.form_approved
        assert not directive.has_signed_form
        assert not directive.has_revocation_statement
        assert not directive.has_redisclosure_statement

    def test_the_form_and_signed_copy_are_written_back_and_no_statement(self) -> None:
        """The case API writes a directive: its form by `policy.uri`, its signed copy by URL;
        what the form states is its approval's, so nothing about statements is written."""
        directive = directive_from_fhir(consent(), facts=WORLD)

        written = directive_to_fhir(directive)

        assert written["policy"] == [{"uri": form_stating(ALL_STATEMENTS)}]
        assert written["sourceAttachment"] == {
            "title": "Signed 42 CFR Part 2 consent form",
            "url": "https://forms.example.org/signed/consent-general.pdf",
        }
        assert "consent-form-statement" not in json.dumps(written)
        assert directive_from_fhir(written, facts=WORLD) == directive

    def test_expiration_event(self) -> None:
        directive = directive_from_fhir(consent(expiration_event="end-of-treatment"))

        assert directive.expiration_event == "end-of-treatment"

    def test_identifier_of_a_recipient(self) -> None:
        resource = consent()
        resource["provision"]["actor"][0]["reference"] = {
            "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
            "display": "Riverside Clinic",
        }

        directive = directive_from_fhir(resource)

        assert directive.provision is not None
        assert directive.provision.actors[0].identifiers == (
            Identifier("http://hl7.org/fhir/sid/us-npi", "1234567893"),
        )

    def test_restriction(self) -> None:
        directive = directive_from_fhir(restriction())

        assert directive.provision is not None
        assert directive.provision.type is ProvisionType.DENY

    @pytest.mark.parametrize(
        ("text", "end", "moment"),
        [
            ("2026", True, datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
            ("2026-02", True, datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC)),
            ("2024-02", True, datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)),
            ("2026-02", False, datetime(2026, 2, 1, tzinfo=UTC)),
            ("2026-02-03T04:05:06Z", True, datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)),
            (
                "2026-02-03T04:05:06.1234567+10:00",
                False,
                datetime(2026, 2, 3, 4, 5, 6, 123456, tzinfo=timezone(timedelta(hours=10))),
            ),
        ],
    )
    def test_period_bounds(self, text: str, end: bool, moment: datetime) -> None:
        bounds = (None, text) if end else (text, None)
        directive = directive_from_fhir(consent(expires=None, root=permit(period=bounds)))

        assert directive.provision is not None
        assert directive.provision.period is not None
        assert (directive.provision.period.end if end else directive.provision.period.start) == (
            moment
        )


class TestUnreadable:
    @pytest.mark.parametrize(
        ("resource", "expression"),
        [
            pytest.param({"resourceType": "Patient"}, "Consent", id="not-a-consent"),
            pytest.param({**consent(), "status": "revoked"}, "Consent.status", id="status"),
            pytest.param(
                consent(root=provision("maybe")), "Consent.provision.type", id="provision-type"
            ),
            pytest.param(consent(signed="10/01/2026"), "Consent.dateTime", id="date"),
            pytest.param(
                consent(root=permit(data=[("some", "Condition/1")])),
                "Consent.provision.data[0].meaning",
                id="data-meaning",
            ),
            pytest.param(
                {**consent(), "performer": {"reference": PATIENT}},
                "Consent.performer",
                id="not-an-array",
            ),
            pytest.param(consent(kind="everything"), "Consent.extension", id="kind"),
            pytest.param(
                {**consent(), "performer": ["Patient/1"]}, "Consent.performer[0]", id="performer"
            ),
            pytest.param(
                {**consent(), "provision": {"actor": [{"reference": "Organization/1"}]}},
                "Consent.provision.actor[0].reference",
                id="reference-not-an-object",
            ),
            pytest.param(
                consent(root={"extension": [{"url": EXPIRATION_EVENT}], **permit()}),
                f"Consent.provision.extension('{EXPIRATION_EVENT}')",
                id="event-without-code",
            ),
        ],
    )
    def test_raises_with_the_expression(self, resource: dict[str, Any], expression: str) -> None:
        with pytest.raises(InvalidResource) as raised:
            directive_from_fhir(resource)

        assert expression in {e for issue in raised.value.issues for e in issue.expression}

    def test_provisions_nested_too_deep(self) -> None:
        root = permit()
        for _ in range(MAX_PROVISION_DEPTH):
            root = provision("deny", children=[root])

        with pytest.raises(InvalidResource) as raised:
            directive_from_fhir(consent(root=root))

        assert raised.value.issues[0].code == "too-costly"


class TestProblemsAsIssues:
    def test_warnings_point_at_the_element(self) -> None:
        resource = consent(root=permit(actors=[]), performers=[])
        directive = directive_from_fhir(resource, facts=WORLD)

        issues = directive_problems_as_issues(directive, AS_OF)

        assert [(i.severity, i.code) for i in issues] == [("warning", "business-rule")] * 2
        assert [i.expression for i in issues] == [
            ("Consent.provision.actor",),
            ("Consent.performer",),
        ]
        assert issues[0].diagnostics.startswith("C1: (d)")

    def test_a_valid_consent_has_none(self) -> None:
        assert (
            directive_problems_as_issues(directive_from_fhir(consent(), facts=WORLD), AS_OF) == ()
        )

    def test_every_element_has_an_expression(self) -> None:
        assert set(ELEMENT_EXPRESSIONS) == set(ConsentElement)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
consent_keys = st.sampled_from(
    [
        *("status", "patient", "dateTime", "performer", "organization", "id", "extension"),
        *("sourceAttachment", "sourceReference", "provision", "type", "period", "actor"),
        *("action", "securityLabel", "purpose", "class", "code", "dataPeriod", "data"),
    ]
)


@settings(max_examples=300)
@given(st.dictionaries(consent_keys, json_values, max_size=5), st.booleans())
def test_any_json_maps_or_raises_invalid_resource(overrides: dict[str, Any], nested: bool) -> None:
    resource = consent()
    if nested:
        resource["provision"] = {**resource["provision"], **overrides}
    else:
        resource.update(overrides)

    issues: tuple[Issue, ...] = ()
    try:
        directive_from_fhir(resource)
    except InvalidResource as error:
        issues = error.issues

    assert all(issue.expression for issue in issues)
