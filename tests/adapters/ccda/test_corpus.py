"""Every document of ../shared/corpora/ccda, read or refused as recorded here.

The expected values were taken by reading each document (its recordTarget, templateIds, code,
confidentialityCode and sections), not from the reader's output. Section counts are the number
of section elements at any level; entry counts are the entry elements of the sections of each
kind (allergies, medications, problems, plan of treatment, goals, health concerns).
"""

from dataclasses import dataclass

import pytest

from adapters.ccda import (
    CcdaDocument,
    Code,
    Confidentiality,
    DocumentKind,
    LabelKind,
    LabelScope,
    Period,
    Quantity,
    Refusal,
    SectionKind,
    read_document,
)
from adapters.errors import MalformedDocument
from tests.conftest import CORPORA, corpus

pytestmark = pytest.mark.corpus

CCDA = CORPORA / "ccda"
REFERRAL = DocumentKind.REFERRAL_NOTE
TRANSFER = DocumentKind.TRANSFER_SUMMARY
CARE_PLAN = DocumentKind.CARE_PLAN
CCD = DocumentKind.CCD
OTHER = DocumentKind.OTHER
N = Confidentiality.NORMAL
R = Confidentiality.RESTRICTED
V = Confidentiality.VERY_RESTRICTED
UNKNOWN = Confidentiality.RESTRICTED_UNKNOWN
COUNTED = (
    SectionKind.ALLERGIES,
    SectionKind.MEDICATIONS,
    SectionKind.PROBLEMS,
    SectionKind.PLAN_OF_TREATMENT,
    SectionKind.GOALS,
    SectionKind.HEALTH_CONCERNS,
)


@dataclass(frozen=True)
class Read:
    """A document that is read: kind, LOINC code as written, first patient name, confidentiality,
    number of sections, and entries per counted section kind (COUNTED order)."""

    kind: DocumentKind
    code: str | None
    patient: str | None
    confidentiality: Confidentiality
    sections: int
    entries: tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class Refused:
    """A document that is refused: why, and where (a substring of the location)."""

    reason: Refusal
    location: str


DOCUMENTS: dict[str, Read | Refused] = {
    # HL7 C-CDA-Examples
    "hl7-examples/Referral_Note.xml": Read(
        REFERRAL, "57113-1", "Eve Betterhalf", N, 19, (2, 2, 3, 5, 0, 0)
    ),
    "hl7-examples/Transfer_Summary.xml": Read(
        TRANSFER, "18761-7", "Eve Betterhalf", N, 27, (2, 2, 3, 9, 0, 0)
    ),
    "hl7-examples/Care_Plan.xml": Read(
        CARE_PLAN, "52521-2", "Eve Betterhalf", N, 4, (0, 0, 0, 0, 1, 2)
    ),
    "hl7-examples/CCD_1.xml": Read(CCD, "34133-9", "Eve Betterhalf", N, 15, (2, 2, 3, 1, 0, 0)),
    "hl7-examples/Discharge_Summary.xml": Read(
        OTHER, "18842-5", "Isabella Jones", N, 21, (3, 0, 2, 1, 0, 0)
    ),
    "hl7-examples/Consult_Document_Closing_Referral.xml": Read(
        OTHER, "11488-4", "Eve Betterhalf", N, 0, (0, 0, 0, 0, 0, 0)
    ),
    "hl7-examples/Direct_Address_Header.xml": Read(
        CCD, "34133-9", "Lisa Nelson", N, 0, (0, 0, 0, 0, 0, 0)
    ),
    "hl7-examples/CCD_Parent_Document_Replace.xml": Read(
        CCD, "34133-9", "Richard Maur jr", N, 20, (1, 1, 1, 0, 0, 1)
    ),
    "hl7-examples/Unstructured_Embedded_PDF.xml": Read(
        OTHER, "11490-0", "Henry L Levin", N, 0, (0, 0, 0, 0, 0, 0)
    ),
    "hl7-examples/Unstructured_Reference_PDF.xml": Read(
        OTHER, "11490-0", "Henry L Levin", N, 0, (0, 0, 0, 0, 0, 0)
    ),
    # ONC 2015 certification test data
    "onc-testdata/b1_toc_amb_rn_r21_sample1_v13.xml": Read(
        REFERRAL, "57133-1", "Myra Jones Banks", N, 17, (2, 3, 5, 5, 2, 2)
    ),
    "onc-testdata/b1_toc_amb_ccd_r21_sample1_v13.xml": Read(
        CCD, "34133-9", "Katherine Jones Madison", N, 17, (2, 3, 5, 5, 2, 2)
    ),
    # R1.1: only the US Realm Header templateId, no CCD template, so OTHER despite 34133-9.
    "onc-testdata/b1_toc_amb_r11_sample1_v8.xml": Read(
        OTHER, "34133-9", "Isabella Isa Jones", N, 12, (1, 1, 1, 1, 0, 0)
    ),
    "onc-testdata/b1_toc_inp_rn_r21_sample1_v12.xml": Read(
        REFERRAL, "57133-1", "Michelle Glen Marshall", N, 20, (2, 12, 6, 3, 2, 2)
    ),
    "onc-testdata/b1_toc_inp_ds_r21_sample1_v12.xml": Read(
        OTHER, "18842-5", "Rabecca Jones Angeles", N, 21, (2, 12, 6, 3, 2, 2)
    ),
    "onc-testdata/b2_ciri_r21_sample1_rn_v11.xml": Read(
        REFERRAL, "57133-1", "Cecilia Cecil Franklin Cummings", N, 17, (1, 2, 2, 0, 0, 0)
    ),
    "onc-testdata/b2_ciri_r21_sample1_rn_recon_v11.xml": Read(
        REFERRAL, "57133-1", "Cecilia Cecil Franklin Cummings", N, 17, (2, 2, 4, 0, 0, 0)
    ),
    "onc-testdata/b9_cp_amb_sample1_v6.xml": Read(
        CARE_PLAN, "52521-2", "Eve Betterhalf", N, 4, (0, 0, 0, 0, 1, 2)
    ),
    "onc-testdata/b1_toc_gold_sample1_v6.xml": Read(
        CCD, "34133-9", "Caroline Richard Helberg", N, 19, (1, 6, 4, 3, 2, 2)
    ),
    # DS4P
    "ds4p/b8_ds4p_amb_sample1_v8.xml": Read(
        CCD, "34133-9", "Alice Jones Newman", R, 17, (2, 3, 5, 5, 2, 2)
    ),
    "ds4p/b8_ds4p_amb_sample2_v4.xml": Read(
        CCD, "34133-9", "Alice Jones Newman", N, 16, (1, 2, 4, 5, 2, 2)
    ),
    "ds4p/b8_ds4p_inp_sample1_v7.xml": Read(
        CCD, "34133-9", "Lindsey Turner Pitt", R, 20, (2, 12, 6, 3, 2, 2)
    ),
    "ds4p/b8_ds4p_inp_sample2_v4.xml": Read(
        CCD, "34133-9", "Lindsey Turner Pitt", N, 19, (1, 2, 5, 3, 2, 2)
    ),
    # A header-less stub claiming both CCD and Care Plan templates: no code, no patient.
    "ds4p/DS4PRefrainTest.xml": Read(CARE_PLAN, None, None, UNKNOWN, 2, (0, 0, 0, 0, 0, 0)),
    "ds4p/Allscripts_DS4P_ValidatorBroke_2MB.xml": Read(
        OTHER,
        "18842-5",
        "Ms Sally The Really Great Patient MD",
        UNKNOWN,
        40,
        (7, 5, 10, 23, 4, 9),
    ),
    # Vendor R1.1 exports
    "vendor-r11/Cerner_ToC_Referral_Summary.xml": Read(
        CCD, "34133-9", "Steve Williamson", N, 12, (2, 4, 5, 0, 0, 0)
    ),
    # A "Referral Summary" by title and file name, a CCD by its templateId.
    "vendor-r11/PracticeFusion_AdamEveryman_ReferralSummary.xml": Read(
        CCD, "34133-9", "Adam Everyman", R, 14, (2, 1, 2, 0, 0, 0)
    ),
    "vendor-r11/Allscripts_InPt_Discharge_Summary_V.xml": Read(
        OTHER, "18842-5", "Isabella Jones", V, 18, (2, 2, 3, 1, 0, 0)
    ),
    "vendor-r11/NextGen_JonesIsabella_txt.xml": Read(
        CCD, "34133-9", "Isabella Jones", N, 19, (3, 4, 3, 9, 0, 0)
    ),
    "vendor-r11/EMERGE_Patient-0.xml": Read(
        CCD, "34133-9", "Bernice Maxwell", N, 9, (3, 2, 5, 0, 0, 0)
    ),
    # Negative test data that parses: read, with what does not conform in `issues`.
    "negative/NT_Bad_DocCode_r11_v2.xml": Read(
        CCD, "sdfasfiysaioyifusaodyfua", "Myra Jones", N, 15, (3, 1, 2, 3, 0, 0)
    ),
    "negative/NT_CCDS_Sample5_r21_v4.xml": Read(
        CCD, "34133-9", "Carrie Richard", UNKNOWN, 19, (2, 6, 4, 3, 0, 0)
    ),
    "negative/NT_Missing_PatientName_r11_v2.xml": Read(
        CCD, "34133-9", None, N, 15, (3, 1, 2, 3, 0, 0)
    ),
    "negative/NT_CP_Sample2_r21_v4.xml": Read(
        CARE_PLAN, "52521-2", "Eve Betterhalf", N, 4, (0, 0, 0, 0, 1, 2)
    ),
    "negative/NT_CP_Sample3_r21_v4.xml": Read(
        CARE_PLAN, "52521-2", "Eve Betterhalf", N, 4, (0, 0, 0, 0, 1, 2)
    ),
    "negative/NT_CP_Sample4_r21_v4.xml": Read(
        CARE_PLAN, "52521-2", "Eve Betterhalf", N, 4, (0, 0, 0, 0, 1, 2)
    ),
    # Negative test data that is not well-formed or not safely decodable: refused.
    "negative/b2_ciri_inp_ccd_v11_MALFORMED.xml": Refused(
        Refusal.NOT_WELL_FORMED, "line 67, column 5"
    ),
    "negative/NT_BadXml_r11_v2.xml": Refused(Refusal.NOT_WELL_FORMED, "line 59, column 4"),
    "negative/GetRealHealth_Larson_BAD_ENCODING.xml": Refused(
        Refusal.INVALID_ENCODING, "byte offset 67090, line 25"
    ),
    "negative/MDLogic_CCD_xmlns_schemaLocation.xml": Refused(
        Refusal.INVALID_NAMESPACE, "line 2, column 118"
    ),
    # Fragments are documentation snippets, not documents: a bare section, a ClinicalDocument
    # without the HL7 v3 namespace, and three using the xsi: prefix without declaring it.
    "fragments/Care_Plan_Goals_and_Instructions.xml": Refused(
        Refusal.NOT_CLINICAL_DOCUMENT, "line 1"
    ),
    "fragments/Intervention_Planned_Referral_and_Note.xml": Refused(
        Refusal.NOT_CLINICAL_DOCUMENT, "line 1"
    ),
    "fragments/Planned_Encounter_Reason_for_Referral.xml": Refused(
        Refusal.UNDECLARED_PREFIX, "line 136, column 168"
    ),
    "fragments/PHQ-9.xml": Refused(Refusal.UNDECLARED_PREFIX, "line 130, column 45"),
    "fragments/Med_oral_with_indications.xml": Refused(
        Refusal.UNDECLARED_PREFIX, "line 88, column 45"
    ),
}

# What each negative document that is read gets reported for (substrings of its issues).
ISSUES = {
    "negative/NT_Bad_DocCode_r11_v2.xml": ["code 'sdfasfiysaioyifusaodyfua'; a ccd is 34133-9"],
    "negative/NT_CCDS_Sample5_r21_v4.xml": [
        "confidentialityCode 'jsalkjfaeuiauewyfaiwryewaiuaewyriuewayaie'",
        "a patient name has empty parts",
        "administrativeGenderCode 'dnfdfdjdjdd' is unknown",
    ],
    "negative/NT_Missing_PatientName_r11_v2.xml": ["the patient has no name"],
    "negative/NT_CP_Sample2_r21_v4.xml": [
        "health-concerns section 'Health Concerns Section' has code 'ddsfddssadfdsas'"
    ],
    "negative/NT_CP_Sample3_r21_v4.xml": [
        "'Health Concerns Section' is read as health-concerns by its code 75310-3"
    ],
    "negative/NT_CP_Sample4_r21_v4.xml": [
        "health-concerns entry 1 (act, line 504) has none of the templateIds",
        "goals entry 1 (observation, line 763) has none of the templateIds",
    ],
    "hl7-examples/Referral_Note.xml": ["code '57113-1'; a referral-note is 57133-1"],
    "ds4p/DS4PRefrainTest.xml": [
        "claims several document templates (care-plan, ccd)",
        "no confidentialityCode",
        "no recordTarget",
    ],
    "ds4p/Allscripts_DS4P_ValidatorBroke_2MB.xml": ["confidentialityCode 'PSY'"],
}


def _read(path: str) -> CcdaDocument:
    corpus("ccda")
    return read_document((CCDA / path).read_bytes())


def _entries(document: CcdaDocument) -> tuple[int, ...]:
    return tuple(
        sum(section.entry_count for section in document.sections_of(kind)) for kind in COUNTED
    )


def test_the_table_covers_every_document_of_the_corpus() -> None:
    folder = corpus("ccda")
    found = {path.relative_to(folder).as_posix() for path in folder.rglob("*.xml")}
    assert found == set(DOCUMENTS)


@pytest.mark.parametrize(
    "path", [p for p, e in DOCUMENTS.items() if isinstance(e, Read)], ids=lambda p: p
)
def test_document_is_read_as_recorded(path: str) -> None:
    expected = DOCUMENTS[path]
    assert isinstance(expected, Read)
    document = _read(path)
    assert document.kind is expected.kind
    assert (document.code.code if document.code else None) == expected.code
    names = document.patient.names if document.patient else ()
    assert (names[0].full() if names else None) == expected.patient
    assert document.confidentiality is expected.confidentiality
    assert len(document.sections) == expected.sections
    assert _entries(document) == expected.entries


@pytest.mark.parametrize(
    "path", [p for p, e in DOCUMENTS.items() if isinstance(e, Refused)], ids=lambda p: p
)
def test_document_is_refused_naming_why(path: str) -> None:
    expected = DOCUMENTS[path]
    assert isinstance(expected, Refused)
    with pytest.raises(MalformedDocument) as refused:
        _read(path)
    assert refused.value.reason is expected.reason
    assert expected.location in (refused.value.location or "")


@pytest.mark.parametrize("path", sorted(ISSUES), ids=lambda p: p)
def test_nonconformance_is_reported(path: str) -> None:
    issues = _read(path).issues
    for expected in ISSUES[path]:
        assert any(expected in issue for issue in issues), (expected, issues)


def test_conformant_samples_have_no_issues() -> None:
    for path in (
        "onc-testdata/b1_toc_amb_rn_r21_sample1_v13.xml",
        "hl7-examples/Transfer_Summary.xml",
        "onc-testdata/b9_cp_amb_sample1_v6.xml",
    ):
        assert _read(path).issues == (), path


class TestReferralNote:
    def test_reason_for_referral_and_header(self) -> None:
        document = _read("onc-testdata/b1_toc_amb_rn_r21_sample1_v13.xml")
        assert document.reason_for_referral == (
            "Ms Myra Banks is being referred to Community Health Hospitals Inpatient facility "
            "because of the high fever noticed and suspected Anemia."
        )
        assert document.effective_time == "20150622"
        assert document.custodian is not None
        assert document.custodian.names == ("Neighborhood Physicians Practice",)
        patient = document.patient
        assert patient is not None
        assert patient.birth_time == "19700601"
        assert patient.gender == Code("2.16.840.1.113883.5.1", "F", "Female")

    def test_medications_for_reconciliation(self) -> None:
        medications = _read("onc-testdata/b2_ciri_r21_sample1_rn_v11.xml").medications
        ceftriaxone, tylenol = medications
        assert ceftriaxone.product == Code(
            "2.16.840.1.113883.6.88", "309090", "Ceftriaxone 100MG/ML"
        )
        assert ceftriaxone.route == Code("2.16.840.1.113883.3.26.1.1", "C38276", "INTRAVENOUS")
        assert ceftriaxone.dose == Quantity("1")
        assert ceftriaxone.frequency == Quantity("12", "h")
        assert ceftriaxone.effective == Period(low="20150622", high="20150630")
        assert (ceftriaxone.status, ceftriaxone.mood, ceftriaxone.negated) == (
            "active",
            "EVN",
            False,
        )
        assert tylenol.product == Code("2.16.840.1.113883.6.88", "209459", "Tylenol 500mg")
        assert tylenol.frequency == Quantity("24", "h")
        assert tylenol.effective == Period(low="20150622")

    def test_problems_and_allergies(self) -> None:
        document = _read("onc-testdata/b2_ciri_r21_sample1_rn_v11.xml")
        assert [
            (p.value.display if p.value else None, p.concern_status) for p in document.problems
        ] == [
            ("Fever", "active"),
            ("Overweight", "completed"),
        ]
        (allergy,) = document.allergies
        assert allergy.substance == Code(
            "2.16.840.1.113883.6.88", "7980", "Penicillin G benzathine"
        )
        assert [reaction.display for reaction in allergy.reactions] == ["Hives"]
        assert allergy.severity is not None
        assert allergy.severity.display == "Moderate"

    def test_hl7_referral_note_is_classified_by_template_not_its_code(self) -> None:
        document = _read("hl7-examples/Referral_Note.xml")
        assert document.kind is REFERRAL
        assert document.code == Code("2.16.840.1.113883.6.1", "57113-1", "Referral Note")
        assert document.reason_for_referral is not None
        assert document.reason_for_referral.startswith(
            "Patient referral for consultation for full care."
        )


class TestTransferSummary:
    def test_sections_and_plan(self) -> None:
        document = _read("hl7-examples/Transfer_Summary.xml")
        (plan,) = document.sections_of(SectionKind.PLAN_OF_TREATMENT)
        assert (plan.code, plan.title, plan.entry_count) == (
            Code("2.16.840.1.113883.6.1", "18776-5", "Plan of care note"),
            "TREATMENT PLAN",
            9,
        )
        assert plan.text_length > 0
        assert [activity.activity for activity in document.plan_of_treatment] == [
            "act",
            "encounter",
            "observation",
            "act",
            "act",
            "procedure",
            "substanceAdministration",
            "substanceAdministration",
            "supply",
        ]
        subsections = [section for section in document.sections if section.level == 2]
        assert [(s.title, s.entry_count) for s in subsections] == [("SKIN, PHYSICAL FINDING", 1)]


class TestCarePlan:
    def test_goals_and_health_concerns(self) -> None:
        document = _read("onc-testdata/b9_cp_amb_sample1_v6.xml")
        (goal,) = document.goals
        assert goal.code == Code("2.16.840.1.113883.6.1", "44616-1", "Pulse oximetry panel")
        concern, risk = document.health_concerns
        assert [code.display for code in concern.concerns] == [
            "Current every day smoker",
            "Respiratory insufficiency",
            "Pneumonia",
        ]
        assert risk.code is not None
        assert risk.code.display == "At risk for"
        assert [activity.section for activity in document.plan_of_treatment] == [
            SectionKind.INTERVENTIONS,
            SectionKind.INTERVENTIONS,
        ]


class TestSecurityLabels:
    def test_ds4p_part2_sample_carries_document_level_labels(self) -> None:
        document = _read("ds4p/b8_ds4p_amb_sample1_v8.xml")
        assert [(label.code, label.kind, label.scope) for label in document.security_labels] == [
            ("R", LabelKind.CONFIDENTIALITY, LabelScope.DOCUMENT),
            ("R", LabelKind.CONFIDENTIALITY, LabelScope.DOCUMENT),
            ("R", LabelKind.CONFIDENTIALITY, LabelScope.DOCUMENT),
            ("NORDSCLCD", LabelKind.REFRAIN_POLICY, LabelScope.DOCUMENT),
            ("TREAT", LabelKind.PURPOSE_OF_USE, LabelScope.DOCUMENT),
        ]
        refrain = document.security_labels[3]
        # The sample puts the refrain code under a value set OID: kept as written.
        assert refrain.written.system_oid == "2.16.840.1.113883.1.11.20471"
        privacy = document.sections_of(SectionKind.PRIVACY_MARKINGS)
        assert [section.code.code if section.code else None for section in privacy] == ["57017-6"]

    def test_control_sample_has_only_its_confidentiality(self) -> None:
        document = _read("ds4p/b8_ds4p_amb_sample2_v4.xml")
        assert [(label.code, label.scope) for label in document.security_labels] == [
            ("N", LabelScope.DOCUMENT)
        ]

    def test_refrain_test_policies(self) -> None:
        document = _read("ds4p/DS4PRefrainTest.xml")
        refrains = [
            label.code
            for label in document.security_labels
            if label.kind is LabelKind.REFRAIN_POLICY
        ]
        assert refrains == ["NOAUTH", "NOAUTH", "NOINTEGRATE", "NOCOLLECT"]

    def test_vendor_labels_at_entry_level_and_a_misplaced_sensitivity_code(self) -> None:
        document = _read("ds4p/Allscripts_DS4P_ValidatorBroke_2MB.xml")
        header = [label for label in document.security_labels if label.section is None]
        assert [(label.code, label.kind, label.written.system_oid) for label in header] == [
            ("PSY", LabelKind.SENSITIVITY, "2.16.840.1.113883.6.96")
        ]
        entry_codes = {
            (label.code, label.kind)
            for label in document.security_labels
            if label.scope is LabelScope.ENTRY
        }
        assert {
            ("V", LabelKind.CONFIDENTIALITY),
            ("CPLYJPP", LabelKind.OBLIGATION_POLICY),
            ("NOORGPOL", LabelKind.REFRAIN_POLICY),
            ("HPAYMT", LabelKind.PURPOSE_OF_USE),
        } <= entry_codes
        section_level = {
            label.code for label in document.security_labels if label.scope is LabelScope.SECTION
        }
        assert section_level == {"N", "V"}


class TestHeader:
    def test_direct_addresses_are_kept_as_written(self) -> None:
        patient = _read("hl7-examples/Direct_Address_Header.xml").patient
        assert patient is not None
        assert [telecom.value for telecom in patient.telecoms] == [
            "tel:+1-4013482345",
            "tel:+1-4016412345",
            "mailto:lisanelson@gmail.com",
            "mailto:lisarnelson@direct.myphd.us",
        ]

    def test_replacement_names_its_parent(self) -> None:
        (related,) = _read("hl7-examples/CCD_Parent_Document_Replace.xml").related_documents
        assert related.type_code == "RPLC"
        assert related.ids[0].extension == "TT661"

    def test_unstructured_reference_is_recorded_not_followed(self) -> None:
        document = _read("hl7-examples/Unstructured_Reference_PDF.xml")
        assert document.non_xml_body is not None
        assert document.non_xml_body.reference == "UD_sample.pdf"
        assert document.sections == ()

    def test_embedded_pdf_is_not_decoded(self) -> None:
        body = _read("hl7-examples/Unstructured_Embedded_PDF.xml").non_xml_body
        assert body is not None
        assert (body.media_type, body.representation) == ("application/pdf", "B64")
        assert body.content_length > 200_000


def test_every_corpus_file_is_in_the_manifest() -> None:
    manifest = corpus("ccda") / "MANIFEST.txt"
    listed = {
        line.split("\t", 1)[0]
        for line in manifest.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert listed == set(DOCUMENTS)
