"""`check`: which §2.31 consents can be relied on, and which element is at fault."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from consent import ConsentElement, ConsentKind, Provision, ProvisionType, check, kind_from_content
from consent import vocabulary as v
from mappings.consent import (
    REDISCLOSURE_RISK,
    REFUSAL_CONSEQUENCES,
    RIGHT_TO_REVOKE,
    ConsentFacts,
    directive_from_fhir,
)
from tests.consent import (
    AS_OF,
    FORM_URI,
    GUARDIAN,
    PARENT,
    PATIENT,
    UNNAMED,
    WORLD,
    actor,
    consent,
    designation,
    label,
    performer,
    permit,
    provision,
    restriction,
    tpo_consent,
)

E = ConsentElement


def problems(resource: dict[str, Any], **kwargs: Any) -> list[tuple[str, ConsentElement]]:
    directive = directive_from_fhir(resource, facts=UNNAMED)
    found = check(directive, kwargs.pop("as_of", AS_OF), **kwargs)
    return [(problem.rule, problem.element) for problem in found.problems]


class TestRequiredElements:
    def test_a_complete_general_consent_is_valid(self) -> None:
        assert check(directive_from_fhir(consent(), facts=WORLD), AS_OF).valid

    def test_a_complete_tpo_consent_is_valid(self) -> None:
        assert check(directive_from_fhir(tpo_consent(), facts=WORLD), AS_OF).valid

    @pytest.mark.parametrize(
        ("resource", "element"),
        [
            pytest.param(consent(patient_name=None), E.PATIENT_NAME, id="a-patient-name"),
            pytest.param(consent(organizations=()), E.DISCLOSERS, id="b-disclosers"),
            pytest.param(consent(root=permit(labels=[])), E.INFORMATION, id="c-information"),
            pytest.param(consent(root=permit(actors=[])), E.RECIPIENTS, id="d-recipients"),
            pytest.param(
                consent(root=permit(actors=[actor(PATIENT, "CST")])),
                E.RECIPIENTS,
                id="d-no-recipient-role",
            ),
            pytest.param(consent(root=permit(purposes=[])), E.PURPOSES, id="e-purposes"),
            pytest.param(consent(expires=None), E.EXPIRATION, id="g-expiration"),
            pytest.param(consent(performers=[]), E.SIGNATURE, id="h-signature"),
            pytest.param(consent(signed=None), E.DATE_SIGNED, id="i-date-signed"),
        ],
    )
    def test_each_missing_element_is_named(
        self, resource: dict[str, Any], element: ConsentElement
    ) -> None:
        assert problems(resource) == [("C1", element)]

    @pytest.mark.parametrize(
        ("resource", "element"),
        [
            pytest.param(consent(statements=()), E.REVOCATION_STATEMENT, id="f-revocation"),
            pytest.param(
                tpo_consent(statements=("right-to-revoke", REFUSAL_CONSEQUENCES)),
                E.REDISCLOSURE_STATEMENT,
                id="tpo-redisclosure",
            ),
            pytest.param(
                tpo_consent(statements=("right-to-revoke", REDISCLOSURE_RISK)),
                E.REFUSAL_STATEMENT,
                id="tpo-refusal",
            ),
        ],
    )
    def test_each_statement_the_approved_form_lacks_is_named(
        self, resource: dict[str, Any], element: ConsentElement
    ) -> None:
        assert problems(resource) == [("C9", element)]

    def test_without_the_signed_form_revocation_and_signature_are_missing(self) -> None:
        assert problems(consent(statements=None)) == [
            ("C9", E.REVOCATION_STATEMENT),
            ("C1", E.SIGNATURE),
        ]


class TestApprovedForms:
    """C9: whether a form states the right to revoke is a fact about the form."""

    def test_a_form_nobody_approved_cannot_be_verified(self) -> None:
        found = check(directive_from_fhir(consent(statements=(), form=FORM_URI)), AS_OF)

        [problem] = found.problems
        assert (problem.rule, problem.element) == ("C9", E.REVOCATION_STATEMENT)
        assert "(f) cannot be verified: the form is not approved" in problem.text

    def test_an_approved_form_supplies_its_statements(self) -> None:
        facts = ConsentFacts(approved_forms={FORM_URI: frozenset({RIGHT_TO_REVOKE})})
        directive = directive_from_fhir(consent(statements=(), form=FORM_URI), facts=facts)

        assert directive.form_approved is True
        assert check(directive, AS_OF).valid

    def test_an_approved_form_lacking_a_statement_says_so(self) -> None:
        facts = ConsentFacts(approved_forms={FORM_URI: frozenset({REDISCLOSURE_RISK})})
        directive = directive_from_fhir(consent(statements=(), form=FORM_URI), facts=facts)

        [problem] = check(directive, AS_OF).problems
        assert problem.rule == "C9"
        assert "the approved form does not state the patient's right to revoke" in problem.text

    def test_the_form_is_found_by_its_attachment_url_too(self) -> None:
        resource = consent(statements=())
        resource["sourceAttachment"]["url"] = FORM_URI
        facts = ConsentFacts(approved_forms={FORM_URI: frozenset({RIGHT_TO_REVOKE})})

        assert check(directive_from_fhir(resource, facts=facts), AS_OF).valid

    def test_a_consent_vouching_for_its_own_statements_is_not_approved(self) -> None:
        """Probe: a signed form given by its title, saying of itself (an extension) that it
        states the right to revoke, was relied on without any approval (C9). Only an approved
        form's statements count, and a title is no signed form (§2.31(a)(8))."""
        resource = consent(statements=None)
        resource["sourceAttachment"] = {
            "title": "Signed consent",
            "extension": [
                {
                    "url": "http://recovery-interop.example.org/fhir/StructureDefinition/"
                    "consent-form-statement",
                    "valueCode": RIGHT_TO_REVOKE,
                }
            ],
        }
        directive = directive_from_fhir(resource, facts=WORLD)

        assert not directive.form_approved
        assert not directive.has_signed_form
        found = check(directive, AS_OF).problems
        assert [(p.rule, p.element) for p in found] == [
            ("C9", E.REVOCATION_STATEMENT),
            ("C1", E.SIGNATURE),
        ]
        assert "(f) cannot be verified: the form is not approved" in found[0].text

    def test_statements_of_a_form_nobody_approved_do_not_count(self) -> None:
        """A directive saying its form states the right to revoke, its form not approved (as a
        directive built in code can): the statement is no approval's, so it cannot be
        verified."""
        directive = replace(
            directive_from_fhir(consent(), facts=WORLD),
            form_approved=False,
            has_revocation_statement=True,
        )

        [problem] = check(directive, AS_OF).problems
        assert (problem.rule, problem.element) == ("C9", E.REVOCATION_STATEMENT)

    @pytest.mark.parametrize(
        ("attachment", "on_file"),
        [
            ({"title": "Signed consent"}, False),
            ({"contentType": "application/pdf", "title": "Signed consent"}, False),
            ({"title": "Signed consent", "url": "   "}, False),
            ({"url": "https://forms.example.org/signed/1.pdf"}, True),
            ({"data": "JVBERi0xLjQK"}, True),
            ({"hash": "2jmj7l5rSw0yVb/vlWAYkK/YBwk="}, True),
        ],
    )
    def test_a_signed_form_is_its_bytes_url_or_hash(
        self, attachment: dict[str, str], on_file: bool
    ) -> None:
        resource = {**consent(), "sourceAttachment": attachment}

        assert directive_from_fhir(resource, facts=WORLD).has_signed_form is on_file

    @pytest.mark.parametrize(
        ("reference", "on_file"),
        [
            ({"reference": "DocumentReference/signed-1"}, True),
            ({"identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"}}, True),
            ({"display": "the signed form"}, False),
        ],
    )
    def test_a_signed_form_by_reference_names_it(
        self, reference: dict[str, Any], on_file: bool
    ) -> None:
        resource = {k: v for k, v in consent().items() if k != "sourceAttachment"}
        resource["sourceReference"] = reference

        assert directive_from_fhir(resource, facts=WORLD).has_signed_form is on_file


class TestRefusals:
    """C8: a refusal's own §2.31 gaps are reported, and never stop it from applying."""

    def test_an_unsigned_refusal_is_reported_incomplete(self) -> None:
        unsigned = consent(
            "refusal",
            signed=None,
            performers=[],
            statements=None,
            expires=None,
            root=provision("deny", actors=[actor()]),
        )

        assert {element for _, element in problems(unsigned)} == {E.SIGNATURE, E.DATE_SIGNED}

    def test_every_problem_is_reported_at_once(self) -> None:
        found = problems(consent(patient_name=None, signed=None, expires=None, status="draft"))

        assert found == [
            ("C5", E.STATUS),
            ("C1", E.PATIENT_NAME),
            ("C1", E.EXPIRATION),
            ("C1", E.DATE_SIGNED),
        ]

    def test_every_permit_of_the_tree_must_name_its_recipient(self) -> None:
        root = provision(
            "deny",
            children=[
                permit(),
                permit(actors=[], labels=[label(v.ETHUD)]),
            ],
        )

        assert problems(consent(root=root)) == [("C1", E.RECIPIENTS)]

    def test_a_permit_inherits_what_its_ancestors_state(self) -> None:
        root = provision(
            None,
            actors=[actor()],
            purposes=["TREAT"],
            children=[permit(actors=[], purposes=[], labels=[label(v.SUD)])],
        )

        assert problems(consent(root=root)) == []

    def test_a_class_of_persons_is_a_recipient_in_any_consent(self) -> None:
        # 2024 §2.31(a)(4)(i): "the name(s) of the person(s), or class of persons"; PART2.md's
        # table, older, allowed a general designation in TPO consents only.
        assert problems(consent(root=permit(actors=[designation()]))) == []
        assert problems(tpo_consent()) == []
        assert problems(consent(root=permit(actors=[]))) == [("C1", E.RECIPIENTS)]

    def test_expiration_none_only_for_tpo(self) -> None:
        assert problems(consent(expires=None, expiration_event="none")) == [("C1", E.EXPIRATION)]
        assert problems(tpo_consent(expiration_event="none")) == []

    def test_an_event_is_an_expiration(self) -> None:
        assert problems(consent(expires=None, expiration_event="end-of-treatment")) == []

    def test_a_restriction_needs_only_name_signature_and_date(self) -> None:
        assert problems(restriction()) == []
        assert problems({**restriction(), "dateTime": None}) == [("C1", E.DATE_SIGNED)]

    def test_an_untyped_provision_is_a_restriction(self) -> None:
        """R4: a provision is an exception to the base policy; untyped, it is read as a deny
        (PART2.md C8), so it needs what a restriction needs and no more."""
        assert problems(consent(root=provision(None, actors=[actor()]))) == []

    def test_a_directive_deciding_nothing_is_invalid(self) -> None:
        resource = consent()
        del resource["provision"]
        assert problems(resource) == [("C1", E.INFORMATION)]


class TestInForce:
    def test_expired(self) -> None:
        assert problems(consent(expires="2026-03-01")) == [("C5", E.EXPIRATION)]

    def test_in_force_through_the_last_day(self) -> None:
        assert problems(consent(expires="2026-03-02")) == []

    def test_not_yet_in_force(self) -> None:
        """Named at its start, not its end (probe 13 #9: the advice was to give period.end)."""
        resource = consent(root=permit(period=("2026-04-01", None)))

        assert problems(resource) == [("C5", E.TERM_START)]

    def test_expiration_event_known_to_have_happened(self) -> None:
        resource = consent(expires=None, expiration_event="end-of-treatment")

        assert problems(resource, occurred_events=frozenset({"end-of-treatment"})) == [
            ("C5", E.EXPIRATION)
        ]

    @pytest.mark.parametrize(
        ("status", "rule"),
        [
            ("inactive", "C6"),
            ("draft", "C5"),
            ("proposed", "C5"),
            ("rejected", "C5"),
            ("entered-in-error", "C5"),
        ],
    )
    def test_only_active_consents_are_in_force(self, status: str, rule: str) -> None:
        assert problems(consent(status=status)) == [(rule, E.STATUS)]

    def test_revocation_text_keeps_past_disclosures(self) -> None:
        found = check(directive_from_fhir(consent(status="inactive"), facts=WORLD), AS_OF)

        assert "revoked" in found.problems[0].text
        assert "already made" in found.problems[0].text

    def test_materially_false(self) -> None:
        assert problems(consent(known_false=True)) == [("C5", E.TRUTHFULNESS)]

    def test_signed_after_the_moment_asked(self) -> None:
        as_of = datetime(2026, 1, 9, tzinfo=UTC)

        assert problems(consent(), as_of=as_of) == [("C5", E.DATE_SIGNED)]


class TestNeverCombined:
    def test_counseling_notes_with_other_records(self) -> None:
        resource = consent(root=permit(labels=[label(v.SUD), label(v.COUNSELING_NOTE)]))

        assert problems(resource) == [("C3", E.INFORMATION)]

    def test_counseling_notes_beside_another_permit(self) -> None:
        root = provision(
            "deny",
            children=[permit(labels=[label(v.COUNSELING_NOTE)]), permit(classes=["CarePlan"])],
        )

        assert problems(consent(root=root)) == [("C3", E.INFORMATION)]

    def test_declared_counseling_consent_releasing_other_records(self) -> None:
        assert problems(consent(kind="counseling-notes")) == [("C3", E.INFORMATION)]

    def test_counseling_notes_alone(self) -> None:
        resource = consent(root=permit(labels=[label(v.COUNSELING_NOTE)]))

        assert problems(resource) == []

    def test_legal_proceedings_with_another_purpose(self) -> None:
        resource = consent(root=permit(purposes=["HLEGAL", "TREAT"]))

        assert problems(resource) == [("C4", E.PURPOSES)]

    def test_legal_purpose_in_a_consent_declared_general(self) -> None:
        resource = consent(kind="general", root=permit(purposes=["HLEGAL"]))

        assert problems(resource) == [("C4", E.PURPOSES)]

    def test_legal_proceedings_alone(self) -> None:
        assert problems(consent(root=permit(purposes=["HLEGAL"]))) == []

    def test_tpo_consent_with_a_purpose_beyond_tpo(self) -> None:
        root = permit(actors=[designation()], purposes=["TREAT", "HPAYMT", "HOPERAT", "PUBHLTH"])

        assert problems(tpo_consent(root=root)) == [("C2", E.PURPOSES)]


class TestSigner:
    @pytest.mark.parametrize(
        ("capacity", "signers", "valid"),
        [
            ("adult", [performer(PATIENT)], True),
            ("adult", [performer(GUARDIAN, "GUARD")], False),
            ("minor-self-consent", [performer(PATIENT)], True),
            ("minor-self-consent", [performer(PARENT, "PRN")], False),
            ("minor-self-consent", [performer(PATIENT), performer(PARENT, "PRN")], True),
            ("minor-parental-consent", [performer(PATIENT), performer(PARENT, "PRN")], True),
            ("minor-parental-consent", [performer(PATIENT)], False),
            ("minor-parental-consent", [performer(PARENT, "PRN")], False),
            ("lacks-capacity", [performer(GUARDIAN, "GUARD")], True),
            ("lacks-capacity", [performer(PATIENT)], False),
            ("deceased", [performer("RelatedPerson/executor", "EXCEST")], True),
            ("deceased", [performer(PATIENT)], False),
        ],
    )
    def test_the_right_person_signs(
        self, capacity: str, signers: list[dict[str, Any]], valid: bool
    ) -> None:
        found = problems(consent(performers=signers, capacity=capacity))

        assert found == ([] if valid else [("C7", E.SIGNATURE)])

    def test_staff_performers_are_not_signers(self) -> None:
        resource = consent(performers=[performer("Practitioner/intake-nurse")])

        assert problems(resource) == [("C1", E.SIGNATURE)]


class TestKindFromContent:
    @pytest.mark.parametrize(
        ("root", "kind"),
        [
            (permit(), ConsentKind.GENERAL),
            (permit(purposes=["TREAT", "HPAYMT", "HOPERAT"]), ConsentKind.TPO),
            (permit(purposes=["TREAT", "HPAYMT"]), ConsentKind.GENERAL),
            (permit(labels=[label(v.COUNSELING_NOTE)]), ConsentKind.COUNSELING_NOTES),
            (permit(purposes=["HLEGAL"]), ConsentKind.LEGAL_PROCEEDINGS),
            (provision("deny", purposes=["HLEGAL"]), ConsentKind.GENERAL),
        ],
    )
    def test_kind(self, root: dict[str, Any], kind: ConsentKind) -> None:
        assert directive_from_fhir(consent(root=root)).kind is kind

    def test_nothing_permitted_is_general(self) -> None:
        assert kind_from_content(None) is ConsentKind.GENERAL
        assert kind_from_content(Provision(type=ProvisionType.DENY)) is ConsentKind.GENERAL

    def test_a_declared_kind_never_weakens_a_tpo_grant(self) -> None:
        """Probe: a consent declaring itself `general` while permitting TREAT, HPAYMT and
        HOPERAT skipped the TPO statements (§2.31(a)(10)). What it grants decides."""
        root = permit(actors=[designation()], purposes=["TREAT", "HPAYMT", "HOPERAT"])
        resource = consent(kind="general", root=root, statements=(RIGHT_TO_REVOKE,))

        assert directive_from_fhir(resource, facts=WORLD).kind is ConsentKind.TPO
        assert problems(resource) == [
            ("C9", E.REDISCLOSURE_STATEMENT),
            ("C9", E.REFUSAL_STATEMENT),
        ]

    @pytest.mark.parametrize(
        ("declared", "root", "kind"),
        [
            ("tpo", permit(), ConsentKind.TPO),
            ("general", permit(labels=[label(v.COUNSELING_NOTE)]), ConsentKind.GENERAL),
            ("counseling-notes", permit(), ConsentKind.COUNSELING_NOTES),
            ("legal-proceedings", permit(), ConsentKind.LEGAL_PROCEEDINGS),
        ],
    )
    def test_a_declared_kind_that_asks_more_stands(
        self, declared: str, root: dict[str, Any], kind: ConsentKind
    ) -> None:
        assert directive_from_fhir(consent(kind=declared, root=root)).kind is kind

    def test_a_directive_built_weaker_than_its_grant_is_not_relied_on(self) -> None:
        tpo = directive_from_fhir(tpo_consent(), facts=WORLD)
        general = replace(tpo, kind=ConsentKind.GENERAL)

        assert check(tpo, AS_OF).valid
        assert ("C2", E.PURPOSES) in [(p.rule, p.element) for p in check(general, AS_OF).problems]
