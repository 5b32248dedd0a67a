"""Reading C-CDA content into typed values, on small documents built for each rule."""

from types import ModuleType

import pytest

import adapters.ccda
from adapters.ccda import (
    Code,
    Confidentiality,
    DocumentKind,
    LabelKind,
    LabelScope,
    Period,
    PersonName,
    Quantity,
    QuantityRange,
    SectionKind,
    read_document,
)

V3 = 'xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
CONFIDENTIALITY = "2.16.840.1.113883.5.25"
REFERRAL_NOTE = "2.16.840.1.113883.10.20.22.1.14"
CCD = "2.16.840.1.113883.10.20.22.1.2"


def clinical_document(
    *sections: str,
    templates: tuple[str, ...] = (REFERRAL_NOTE,),
    code: str = "57133-1",
    confidentiality: str = f'<confidentialityCode code="N" codeSystem="{CONFIDENTIALITY}"/>',
    patient: str = "<name><given>Ada</given><family>Lovelace</family></name>",
) -> bytes:
    """A C-CDA document with the given header parts and body sections."""
    template_ids = "".join(f'<templateId root="{root}"/>' for root in templates)
    body = "".join(f"<component>{section}</component>" for section in sections)
    return (
        f"<ClinicalDocument {V3}>"
        '<templateId root="2.16.840.1.113883.10.20.22.1.1"/>'
        f'{template_ids}<code code="{code}" codeSystem="2.16.840.1.113883.6.1"/>'
        f"<title>Test</title>{confidentiality}"
        f"<recordTarget><patientRole><patient>{patient}</patient></patientRole></recordTarget>"
        f"<component><structuredBody>{body}</structuredBody></component></ClinicalDocument>"
    ).encode()


def section(template: str, code: str, *entries: str, text: str = "", extra: str = "") -> str:
    entry_elements = "".join(f"<entry>{entry}</entry>" for entry in entries)
    return (
        f'<section><templateId root="{template}"/>'
        f'<code code="{code}" codeSystem="2.16.840.1.113883.6.1"/>'
        f"<title>{code}</title><text>{text}</text>{extra}{entry_elements}</section>"
    )


def test_the_public_names_exist_and_are_all_listed() -> None:
    public = {name for name in dir(adapters.ccda) if not name.startswith("_")}
    assert set(adapters.ccda.__all__) <= public
    unlisted = public - set(adapters.ccda.__all__)
    assert {"model", "parser", "reader", "templates", "writer"} <= unlisted
    assert all(isinstance(getattr(adapters.ccda, name), ModuleType) for name in unlisted)


class TestKind:
    @pytest.mark.parametrize(
        ("template", "kind"),
        [
            ("2.16.840.1.113883.10.20.22.1.14", DocumentKind.REFERRAL_NOTE),
            ("2.16.840.1.113883.10.20.22.1.13", DocumentKind.TRANSFER_SUMMARY),
            ("2.16.840.1.113883.10.20.22.1.15", DocumentKind.CARE_PLAN),
            ("2.16.840.1.113883.10.20.22.1.2", DocumentKind.CCD),
            ("2.16.840.1.113883.10.20.22.1.8", DocumentKind.OTHER),
        ],
    )
    def test_by_template_whatever_the_code(self, template: str, kind: DocumentKind) -> None:
        document = read_document(clinical_document(templates=(template,), code="34133-9"))
        assert document.kind is kind
        assert document.code == Code("2.16.840.1.113883.6.1", "34133-9")

    def test_a_code_other_than_the_templates_is_reported(self) -> None:
        document = read_document(clinical_document(code="18776-5"))
        assert document.kind is DocumentKind.REFERRAL_NOTE
        assert document.issues == ("the document has code '18776-5'; a referral-note is 57133-1",)

    def test_several_claims_resolve_to_the_most_specific(self) -> None:
        document = read_document(clinical_document(templates=(CCD, REFERRAL_NOTE)))
        assert document.kind is DocumentKind.REFERRAL_NOTE
        assert "claims several document templates (referral-note, ccd)" in document.issues[0]


class TestConfidentiality:
    @pytest.mark.parametrize(
        ("element", "expected"),
        [
            (f'<confidentialityCode code="N" codeSystem="{CONFIDENTIALITY}"/>', "N"),
            (f'<confidentialityCode code="R" codeSystem="{CONFIDENTIALITY}"/>', "R"),
            (f'<confidentialityCode code="V" codeSystem="{CONFIDENTIALITY}"/>', "V"),
            ('<confidentialityCode code="N"/>', "N"),
            (f'<confidentialityCode code="L" codeSystem="{CONFIDENTIALITY}"/>', "unknown"),
            (f'<confidentialityCode code="M" codeSystem="{CONFIDENTIALITY}"/>', "unknown"),
            (f'<confidentialityCode code="n" codeSystem="{CONFIDENTIALITY}"/>', "unknown"),
            ('<confidentialityCode code="N" codeSystem="2.16.840.1.113883.6.96"/>', "unknown"),
            ('<confidentialityCode nullFlavor="UNK"/>', "unknown"),
            ("", "unknown"),
        ],
    )
    def test_fail_closed(self, element: str, expected: str) -> None:
        document = read_document(clinical_document(confidentiality=element))
        wanted = {
            "N": Confidentiality.NORMAL,
            "R": Confidentiality.RESTRICTED,
            "V": Confidentiality.VERY_RESTRICTED,
            "unknown": Confidentiality.RESTRICTED_UNKNOWN,
        }[expected]
        assert document.confidentiality is wanted
        assert bool(document.issues) is (expected == "unknown")


SECURITY_OBSERVATION = (
    '<observation classCode="OBS" moodCode="EVN">{templates}'
    '<code code="{kind}" codeSystem="2.16.840.1.113883.1.11.20457"/>'
    '<value xsi:type="CE" code="{code}" codeSystem="{system}"/></observation>'
)


def security_observation(
    code: str,
    *,
    kind: str = "SECCONOBS",
    system: str = "2.16.840.1.113883.5.4",
    templated: bool = True,
) -> str:
    templates = (
        '<templateId root="2.16.840.1.113883.3.445.21"/>'
        '<templateId root="2.16.840.1.113883.3.445.23"/>'
        if templated
        else ""
    )
    return SECURITY_OBSERVATION.format(templates=templates, kind=kind, code=code, system=system)


def privacy_annotations(*observations: str) -> str:
    components = "".join(f"<component>{observation}</component>" for observation in observations)
    return (
        '<organizer classCode="CLUSTER" moodCode="EVN">'
        '<templateId root="2.16.840.1.113883.3.3251.1.4"/>'
        f'<statusCode code="active"/>{components}</organizer>'
    )


class TestSecurityLabels:
    def test_document_level_privacy_markings(self) -> None:
        markings = section(
            "2.16.840.1.113883.3.3251.1.5",
            "57017-6",
            privacy_annotations(
                security_observation("NORDSLCD", system="2.16.840.1.113883.5.1063"),
                security_observation(
                    "ETH", kind="SECCATOBS", system="2.16.840.1.113883.1.11.20471", templated=False
                ),
                security_observation("TREAT", kind="SECCONOBS", system="2.16.840.1.113883.5.8"),
                security_observation("CPLYJPP"),
            ),
            extra=f'<confidentialityCode code="R" codeSystem="{CONFIDENTIALITY}"/>',
        )
        document = read_document(clinical_document(markings))
        assert [(label.code, label.kind, label.scope) for label in document.security_labels] == [
            ("N", LabelKind.CONFIDENTIALITY, LabelScope.DOCUMENT),
            ("R", LabelKind.CONFIDENTIALITY, LabelScope.DOCUMENT),
            ("NORDSCLCD", LabelKind.REFRAIN_POLICY, LabelScope.DOCUMENT),
            ("ETH", LabelKind.SENSITIVITY, LabelScope.DOCUMENT),
            ("TREAT", LabelKind.PURPOSE_OF_USE, LabelScope.DOCUMENT),
            ("CPLYJPP", LabelKind.OBLIGATION_POLICY, LabelScope.DOCUMENT),
        ]
        misspelt = document.security_labels[2]
        assert misspelt.written == Code("2.16.840.1.113883.5.1063", "NORDSLCD")
        assert misspelt.section == "57017-6"

    def test_section_and_entry_level_labels(self) -> None:
        problem = (
            '<act classCode="ACT" moodCode="EVN">'
            '<templateId root="2.16.840.1.113883.10.20.22.4.3"/>'
            f'<confidentialityCode code="V" codeSystem="{CONFIDENTIALITY}"/>'
            '<entryRelationship typeCode="COMP">'
            f"{privacy_annotations(security_observation('NOREUSE'))}</entryRelationship></act>"
        )
        problems = section(
            "2.16.840.1.113883.10.20.22.2.5.1",
            "11450-4",
            problem,
            extra=f'<confidentialityCode code="R" codeSystem="{CONFIDENTIALITY}"/>',
        )
        document = read_document(clinical_document(problems))
        assert [(label.code, label.scope, label.section) for label in document.security_labels] == [
            ("N", LabelScope.DOCUMENT, None),
            ("R", LabelScope.SECTION, "11450-4"),
            ("V", LabelScope.ENTRY, "11450-4"),
            ("NOREUSE", LabelScope.ENTRY, "11450-4"),
        ]

    def test_a_security_observation_without_a_code_is_reported(self) -> None:
        observation = (
            '<observation classCode="OBS" moodCode="EVN">'
            '<templateId root="2.16.840.1.113883.3.445.21"/><value nullFlavor="UNK"/>'
            "</observation>"
        )
        markings = section("2.16.840.1.113883.3.3251.1.5", "57017-6", observation)
        document = read_document(clinical_document(markings))
        assert [label.code for label in document.security_labels] == ["N"]
        assert any("security observation" in issue for issue in document.issues)

    def test_unknown_label_codes_are_kept(self) -> None:
        markings = section(
            "2.16.840.1.113883.3.3251.1.5",
            "57017-6",
            privacy_annotations(security_observation("SOMETHINGNEW")),
        )
        (_, label) = read_document(clinical_document(markings)).security_labels
        assert (label.code, label.kind) == ("SOMETHINGNEW", LabelKind.OTHER)


class TestSections:
    def test_summary_nesting_and_narrative(self) -> None:
        outer = section(
            "2.16.840.1.113883.10.20.2.10",
            "29545-1",
            text="  Exam\n   normal ",
            extra=f"<component>{section('2.16.840.1.113883.10.20.22.2.63', '8709-8')}</component>",
        )
        document = read_document(clinical_document(outer))
        assert [(s.kind, s.title, s.level, s.text_length) for s in document.sections] == [
            (SectionKind.OTHER, "29545-1", 1, len("Exam normal")),
            (SectionKind.OTHER, "8709-8", 2, 0),
        ]

    def test_a_section_known_only_by_its_code_is_read_and_reported(self) -> None:
        goals = section(
            "1.2.3",
            "61146-7",
            '<observation classCode="OBS" moodCode="GOL">'
            '<templateId root="2.16.840.1.113883.10.20.22.4.121"/>'
            '<code code="8310-5" codeSystem="2.16.840.1.113883.6.1"/></observation>',
        )
        document = read_document(clinical_document(goals))
        assert document.sections[0].kind is SectionKind.GOALS
        assert len(document.goals) == 1
        assert document.issues == (
            "the section '61146-7' is read as goals by its code 61146-7: "
            "none of its templateIds is known",
        )

    def test_reason_for_referral_text(self) -> None:
        reason = section(
            "1.3.6.1.4.1.19376.1.5.3.1.3.1",
            "42349-1",
            text="<paragraph>Opioid use disorder,</paragraph>\n <paragraph>MOUD intake</paragraph>",
        )
        document = read_document(clinical_document(reason))
        assert document.reason_for_referral == "Opioid use disorder, MOUD intake"


MEDICATION = (
    '<substanceAdministration classCode="SBADM" moodCode="{mood}"{negation}>'
    '<templateId root="2.16.840.1.113883.10.20.22.4.16"/>'
    '<id root="1.2.3" extension="med-{n}"/>'
    '<text><reference value="#sig{n}"/></text><statusCode code="active"/>'
    '<effectiveTime xsi:type="IVL_TS"><low value="20240101"/><high nullFlavor="UNK"/>'
    "</effectiveTime>"
    '<effectiveTime xsi:type="PIVL_TS" operator="A"><period value="8" unit="h"/></effectiveTime>'
    '<routeCode code="C38288" codeSystem="2.16.840.1.113883.3.26.1.1" displayName="ORAL"/>'
    "{dose}"
    "<consumable><manufacturedProduct><manufacturedMaterial>"
    '<code code="1010600" codeSystem="2.16.840.1.113883.6.88" displayName="buprenorphine">'
    '<originalText><reference value="#name{n}"/></originalText>'
    '<translation code="12496-0250" codeSystem="2.16.840.1.113883.6.69"/></code>'
    "</manufacturedMaterial></manufacturedProduct></consumable></substanceAdministration>"
)
MEDICATION_TEXT = (
    '<list><item ID="name1">Buprenorphine 8 mg / naloxone 2 mg</item>'
    '<item ID="sig1">one film <content>under the tongue</content> daily</item></list>'
)


class TestMedications:
    def test_a_medication_activity(self) -> None:
        medication = MEDICATION.format(
            n=1, mood="EVN", negation="", dose='<doseQuantity value="1" unit="{film}"/>'
        )
        medications = section(
            "2.16.840.1.113883.10.20.22.2.1.1", "10160-0", medication, text=MEDICATION_TEXT
        )
        (read,) = read_document(clinical_document(medications)).medications
        assert read.section is SectionKind.MEDICATIONS
        assert read.product == Code("2.16.840.1.113883.6.88", "1010600", "buprenorphine")
        assert read.product_translations == (Code("2.16.840.1.113883.6.69", "12496-0250"),)
        assert read.product_text == "Buprenorphine 8 mg / naloxone 2 mg"
        assert read.text == "one film under the tongue daily"
        assert read.dose == Quantity("1", "{film}")
        assert read.route == Code("2.16.840.1.113883.3.26.1.1", "C38288", "ORAL")
        assert read.frequency == Quantity("8", "h")
        assert read.effective == Period(low="20240101")
        assert (read.mood, read.status, read.negated) == ("EVN", "active", False)
        assert read.ids[0].extension == "med-1"

    def test_discharge_medications_inside_their_act_with_a_dose_range(self) -> None:
        medication = MEDICATION.format(
            n=2,
            mood="INT",
            negation=' negationInd="true"',
            dose='<doseQuantity><low value="4" unit="mg"/><high value="8" unit="mg"/>'
            "</doseQuantity>",
        )
        wrapped = (
            '<act classCode="ACT" moodCode="EVN">'
            '<templateId root="2.16.840.1.113883.10.20.22.4.35"/>'
            f'<entryRelationship typeCode="SUBJ">{medication}</entryRelationship></act>'
        )
        discharge = section("2.16.840.1.113883.10.20.22.2.11.1", "10183-2", wrapped)
        document = read_document(clinical_document(discharge))
        (read,) = document.medications
        assert read.section is SectionKind.DISCHARGE_MEDICATIONS
        assert read.dose == QuantityRange(Quantity("4", "mg"), Quantity("8", "mg"))
        assert (read.mood, read.negated) == ("INT", True)
        assert read.product_text is None  # the reference points at nothing
        assert document.issues == ()


class TestOtherEntries:
    def test_goal_values(self) -> None:
        def goal(value: str) -> str:
            return (
                '<observation classCode="OBS" moodCode="GOL">'
                '<templateId root="2.16.840.1.113883.10.20.22.4.121"/>'
                f'<code code="x" codeSystem="1.2"/><statusCode code="active"/>{value}</observation>'
            )

        goals = section(
            "2.16.840.1.113883.10.20.22.2.60",
            "61146-7",
            goal('<value xsi:type="ST">Stay in treatment</value>'),
            goal('<value xsi:type="PQ" value="7" unit="d"/>'),
            goal('<value xsi:type="IVL_PQ"><low value="92" unit="%"/></value>'),
            goal('<value xsi:type="CD" code="160245001" codeSystem="2.16.840.1.113883.6.96"/>'),
            goal('<value xsi:type="CD" nullFlavor="OTH"><originalText>Abstinent</originalText>'),
        )
        goals = goals.replace("</originalText>", "</originalText></value>")
        values = [g.value for g in read_document(clinical_document(goals)).goals]
        assert values == [
            "Stay in treatment",
            Quantity("7", "d"),
            QuantityRange(Quantity("92", "%"), None),
            Code("2.16.840.1.113883.6.96", "160245001"),
            "Abstinent",
        ]

    def test_plan_of_treatment_entries(self) -> None:
        encounter = (
            '<encounter classCode="ENC" moodCode="INT">'
            '<templateId root="2.16.840.1.113883.10.20.22.4.40"/>'
            '<code code="11429006" codeSystem="2.16.840.1.113883.6.96" displayName="consultation"/>'
            '<text>Intake at the <content>OTP</content></text><statusCode code="active"/>'
            '<effectiveTime><low value="20240110"/></effectiveTime></encounter>'
        )
        plan = section("2.16.840.1.113883.10.20.22.2.10", "18776-5", encounter)
        (activity,) = read_document(clinical_document(plan)).plan_of_treatment
        assert (activity.activity, activity.mood, activity.text) == (
            "encounter",
            "INT",
            "Intake at the OTP",
        )
        assert activity.effective == Period(low="20240110")

    def test_problem_translations_when_the_value_is_not_coded(self) -> None:
        concern = (
            '<act classCode="ACT" moodCode="EVN">'
            '<templateId root="2.16.840.1.113883.10.20.22.4.3"/><statusCode code="active"/>'
            '<entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN">'
            '<templateId root="2.16.840.1.113883.10.20.22.4.4"/>'
            '<value xsi:type="CD" nullFlavor="OTH">'
            '<translation code="F11.20" codeSystem="2.16.840.1.113883.6.90"/></value>'
            "</observation></entryRelationship></act>"
        )
        problems = section("2.16.840.1.113883.10.20.22.2.5.1", "11450-4", concern)
        (problem,) = read_document(clinical_document(problems)).problems
        assert problem.value is None
        assert problem.value_translations == (Code("2.16.840.1.113883.6.90", "F11.20"),)
        assert problem.concern_status == "active"


class TestPatient:
    def test_unstructured_name_and_parts_as_written(self) -> None:
        patient = (
            "<name>  Ada   Lovelace </name>"
            '<name use="L"><prefix>Lady</prefix><given>Augusta</given><given>Ada</given>'
            "<family>King</family></name>"
            '<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>'
            '<birthTime value="18151210"/>'
        )
        read = read_document(clinical_document(patient=patient)).patient
        assert read is not None
        assert read.names == (
            PersonName(text="Ada Lovelace"),
            PersonName(use="L", prefixes=("Lady",), given=("Augusta", "Ada"), family=("King",)),
        )
        assert read.birth_time == "18151210"

    def test_no_name_is_reported(self) -> None:
        document = read_document(clinical_document(patient="<name nullFlavor='UNK'/>"))
        assert document.issues == ("the patient has no name",)
