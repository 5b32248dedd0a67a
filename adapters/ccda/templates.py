"""The identifiers the C-CDA reader recognises: templateIds, LOINC codes and DS4P security codes.

Sources: HL7 C-CDA R2.1 (CDAR2_IG_CCDA_CLINNOTES_R1_DSTU2.1, with the 2019 errata), HL7 CDA R2 IG
Data Segmentation for Privacy (DS4P) R1, and the HL7 v3 vocabulary (Confidentiality
2.16.840.1.113883.5.25, ActCode, ActReason). Templates are matched on their root; the extension
only says which release of the template the sender followed.
"""

from enum import StrEnum

HL7_V3 = "urn:hl7-org:v3"
SDTC = "urn:hl7-org:sdtc"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

LOINC = "2.16.840.1.113883.6.1"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"


class DocumentKind(StrEnum):
    """The document types this service acts on, told apart by templateId."""

    REFERRAL_NOTE = "referral-note"
    TRANSFER_SUMMARY = "transfer-summary"
    CARE_PLAN = "care-plan"
    CCD = "ccd"
    OTHER = "other"


US_REALM_HEADER = "2.16.840.1.113883.10.20.22.1.1"

# Most specific first: a document claiming two kinds (a CCD that is also a Care Plan) is read as
# the first of them, and the claim is reported as an issue.
DOCUMENT_TEMPLATES: dict[str, DocumentKind] = {
    "2.16.840.1.113883.10.20.22.1.14": DocumentKind.REFERRAL_NOTE,
    "2.16.840.1.113883.10.20.22.1.13": DocumentKind.TRANSFER_SUMMARY,
    "2.16.840.1.113883.10.20.22.1.15": DocumentKind.CARE_PLAN,
    "2.16.840.1.113883.10.20.22.1.2": DocumentKind.CCD,
}

# The LOINC document code each kind is expected to carry; a different one is reported, not
# used: HL7's own Referral Note example says 57113-1, and later C-CDA Care Plans use other codes.
DOCUMENT_CODES: dict[DocumentKind, str] = {
    DocumentKind.REFERRAL_NOTE: "57133-1",
    DocumentKind.TRANSFER_SUMMARY: "18761-7",
    DocumentKind.CARE_PLAN: "52521-2",
    DocumentKind.CCD: "34133-9",
}


class SectionKind(StrEnum):
    """The sections the reader takes entries from; every other section is OTHER."""

    ALLERGIES = "allergies"
    MEDICATIONS = "medications"
    ADMISSION_MEDICATIONS = "admission-medications"
    DISCHARGE_MEDICATIONS = "discharge-medications"
    PROBLEMS = "problems"
    PLAN_OF_TREATMENT = "plan-of-treatment"
    INTERVENTIONS = "interventions"
    GOALS = "goals"
    HEALTH_CONCERNS = "health-concerns"
    REASON_FOR_REFERRAL = "reason-for-referral"
    PRIVACY_MARKINGS = "privacy-markings"
    OTHER = "other"


SECTION_TEMPLATES: dict[str, SectionKind] = {
    "2.16.840.1.113883.10.20.22.2.6": SectionKind.ALLERGIES,
    "2.16.840.1.113883.10.20.22.2.6.1": SectionKind.ALLERGIES,
    "2.16.840.1.113883.10.20.22.2.1": SectionKind.MEDICATIONS,
    "2.16.840.1.113883.10.20.22.2.1.1": SectionKind.MEDICATIONS,
    "2.16.840.1.113883.10.20.22.2.44": SectionKind.ADMISSION_MEDICATIONS,
    "2.16.840.1.113883.10.20.22.2.11": SectionKind.DISCHARGE_MEDICATIONS,
    "2.16.840.1.113883.10.20.22.2.11.1": SectionKind.DISCHARGE_MEDICATIONS,
    "2.16.840.1.113883.10.20.22.2.5": SectionKind.PROBLEMS,
    "2.16.840.1.113883.10.20.22.2.5.1": SectionKind.PROBLEMS,
    "2.16.840.1.113883.10.20.22.2.10": SectionKind.PLAN_OF_TREATMENT,
    "2.16.840.1.113883.10.20.21.2.3": SectionKind.INTERVENTIONS,
    "2.16.840.1.113883.10.20.22.2.60": SectionKind.GOALS,
    "2.16.840.1.113883.10.20.22.2.58": SectionKind.HEALTH_CONCERNS,
    "1.3.6.1.4.1.19376.1.5.3.1.3.1": SectionKind.REASON_FOR_REFERRAL,
    "2.16.840.1.113883.3.3251.1.5": SectionKind.PRIVACY_MARKINGS,
}

# LOINC section codes; the first of each kind is the one C-CDA R2.1 requires, the others are
# codes earlier releases and the HL7 examples use for the same section.
SECTION_CODES: dict[SectionKind, tuple[str, ...]] = {
    SectionKind.ALLERGIES: ("48765-2",),
    SectionKind.MEDICATIONS: ("10160-0",),
    SectionKind.ADMISSION_MEDICATIONS: ("42346-7",),
    SectionKind.DISCHARGE_MEDICATIONS: ("10183-2", "75311-1"),
    SectionKind.PROBLEMS: ("11450-4",),
    SectionKind.PLAN_OF_TREATMENT: ("18776-5",),
    SectionKind.INTERVENTIONS: ("62387-6",),
    SectionKind.GOALS: ("61146-7",),
    SectionKind.HEALTH_CONCERNS: ("75310-3",),
    SectionKind.REASON_FOR_REFERRAL: ("42349-1",),
    SectionKind.PRIVACY_MARKINGS: ("57017-6",),
}
SECTION_BY_CODE: dict[str, SectionKind] = {
    code: kind for kind, codes in SECTION_CODES.items() for code in codes
}

# Entry templates each section's entries are expected to carry (the clinical statement's own
# templateId); an entry without one is still read, and reported.
ALLERGY_CONCERN_ACT = "2.16.840.1.113883.10.20.22.4.30"
ALLERGY_OBSERVATION = "2.16.840.1.113883.10.20.22.4.7"
REACTION_OBSERVATION = "2.16.840.1.113883.10.20.22.4.9"
SEVERITY_OBSERVATION = "2.16.840.1.113883.10.20.22.4.8"
ALLERGY_STATUS_OBSERVATION = "2.16.840.1.113883.10.20.22.4.28"
PROBLEM_CONCERN_ACT = "2.16.840.1.113883.10.20.22.4.3"
PROBLEM_OBSERVATION = "2.16.840.1.113883.10.20.22.4.4"
MEDICATION_ACTIVITY = "2.16.840.1.113883.10.20.22.4.16"
ADMISSION_MEDICATION = "2.16.840.1.113883.10.20.22.4.36"
DISCHARGE_MEDICATION = "2.16.840.1.113883.10.20.22.4.35"
GOAL_OBSERVATION = "2.16.840.1.113883.10.20.22.4.121"
HEALTH_CONCERN_ACT = "2.16.840.1.113883.10.20.22.4.132"
RISK_CONCERN_ACT = "2.16.840.1.113883.10.20.22.4.136"
HEALTH_STATUS_OBSERVATION = "2.16.840.1.113883.10.20.22.4.5"

ENTRY_TEMPLATES: dict[SectionKind, frozenset[str]] = {
    SectionKind.ALLERGIES: frozenset({ALLERGY_CONCERN_ACT}),
    SectionKind.MEDICATIONS: frozenset({MEDICATION_ACTIVITY}),
    SectionKind.ADMISSION_MEDICATIONS: frozenset({ADMISSION_MEDICATION}),
    SectionKind.DISCHARGE_MEDICATIONS: frozenset({DISCHARGE_MEDICATION}),
    SectionKind.PROBLEMS: frozenset({PROBLEM_CONCERN_ACT}),
    SectionKind.GOALS: frozenset({GOAL_OBSERVATION}),
    SectionKind.HEALTH_CONCERNS: frozenset(
        {HEALTH_CONCERN_ACT, RISK_CONCERN_ACT, HEALTH_STATUS_OBSERVATION}
    ),
}

# DS4P: a Security Observation carries one label in its value; it is known by its templateId
# (the 2.16.840.1.113883.3.445 family) or, in samples that omit it, by its code (SECCLASSOBS,
# SECCONOBS, SECCATOBS ...).
DS4P_TEMPLATE_PREFIX = "2.16.840.1.113883.3.445."
DS4P_OBSERVATION_CODE_PREFIX = "SEC"


class Confidentiality(StrEnum):
    """The document's confidentialityCode, read fail-closed.

    Only N, R and V of HL7 Confidentiality (2.16.840.1.113883.5.25, the C-CDA
    BasicConfidentialityKind value set), or with the codeSystem left out as some vendors do, are
    taken at their word; anything else (no code, a nullFlavor, another system, a sensitivity code
    such as PSY put there, the valid but unexpected U/L/M) is RESTRICTED_UNKNOWN, to be handled
    at least as R.
    """

    NORMAL = "N"
    RESTRICTED = "R"
    VERY_RESTRICTED = "V"
    RESTRICTED_UNKNOWN = "restricted-unknown"


CONFIDENTIALITY_CODES: dict[str, Confidentiality] = {
    "N": Confidentiality.NORMAL,
    "R": Confidentiality.RESTRICTED,
    "V": Confidentiality.VERY_RESTRICTED,
}


class LabelKind(StrEnum):
    """What a security label says, decided by its code alone.

    DS4P senders put these codes under several code system OIDs (ActCode, ActReason,
    SecurityObservationValue, value set OIDs), many of them wrong, so the system is kept as
    written and never used to classify.
    """

    CONFIDENTIALITY = "confidentiality"
    SENSITIVITY = "sensitivity"
    REFRAIN_POLICY = "refrain-policy"
    OBLIGATION_POLICY = "obligation-policy"
    PURPOSE_OF_USE = "purpose-of-use"
    OTHER = "other"


# Misspellings seen in DS4P samples, mapped to the HL7 code.
LABEL_SPELLINGS: dict[str, str] = {"NORDSLCD": "NORDSCLCD"}

_CONFIDENTIALITY_LABELS = frozenset({"U", "L", "M", "N", "R", "V"})
# ActCode _InformationSensitivityPolicy (v3 vocabulary), with the 42 CFR Part 2 relevant ETH/SUD.
_SENSITIVITY_LABELS = frozenset(
    {
        "ETH", "SUD", "OUD", "PSY", "PSYTHPN", "BH", "HIV", "STD", "SDV", "SEX", "MST", "GDIS",
        "SCA", "SICKLE", "TBOO", "SPI", "DRGIS", "DEMO", "DOB", "GENDER", "LIVARG", "MARST",
        "RACE", "REL", "B", "EMPL", "LOCIS", "SSP", "ADOL", "CEL", "DIA", "EMP", "PDS", "PHY",
        "PRS", "COMPT", "ACOCOMPT", "HRCOMPT", "RESCOMPT", "RMGTCOMPT", "SOGI",
    }
)  # fmt: skip
# ActCode _RefrainPolicy.
_REFRAIN_LABELS = frozenset(
    {
        "NOAUTH", "NOCOLLECT", "NODSCLCD", "NODSCLCDS", "NOINTEGRATE", "NOLIST", "NOMOU",
        "NOORGPOL", "NOPAT", "NOPERSISTP", "NORDSCLCD", "NORDSCLCDS", "NORDSCLW", "NORELINK",
        "NOREUSE", "NOVIP", "ORCON",
    }
)  # fmt: skip
# ActCode _ObligationPolicy.
_OBLIGATION_LABELS = frozenset(
    {
        "ANONY", "AOD", "AUDIT", "AUDTR", "CPLYCC", "CPLYCD", "CPLYIP", "CPLYJPP", "CPLYOPP",
        "CPLYOSP", "CPLYPOL", "DECLASSIFYLABEL", "DEID", "DELAU", "DOWNGRDLABEL", "DRIVLABEL",
        "ENCRYPT", "ENCRYPTR", "ENCRYPTT", "ENCRYPTU", "HUAPRV", "LABEL", "MASK", "MINEC",
        "PERSISTLABEL", "PRIVMARK", "PSEUD", "REDACT", "UPGRDLABEL",
    }
)  # fmt: skip
# ActReason _PurposeOfUse.
_PURPOSE_LABELS = frozenset(
    {
        "TREAT", "ETREAT", "BTG", "ERTREAT", "POPHLTH", "CAREMGT", "CLINTRCH", "CLINTRL",
        "HPAYMT", "CLMATTCH", "COVAUTH", "COVERAGE", "ELIGDTRM", "ELIGVER", "ENROLLM",
        "REMITADV", "HOPERAT", "HRESCH", "BIORCH", "PATRQT", "FAMRQT", "PWATRNY", "SUPNWK",
        "PUBHLTH", "DISASTER", "THREAT", "HMARKT", "HLEGAL", "HCOMPL", "HDIRECT", "HSYSADMIN",
        "HACCRED", "HQUALIMP", "HDECD", "DONAT", "FRAUD", "GOV", "HPRGRP", "HOUTCOMS", "HTEST",
        "TRAIN", "METAMGT", "MEMADMIN", "MILCDM", "PATADMIN", "PATSFTY", "PERFMSR", "RECORDMGT",
        "SYSDEV", "COC", "TRANSRCH", "DSRCH", "POARCH", "LABELING", "MLTRAINING",
    }
)  # fmt: skip


def label_kind(code: str) -> LabelKind:
    """The kind of a (normalised) security label code."""
    if code in _CONFIDENTIALITY_LABELS:
        return LabelKind.CONFIDENTIALITY
    if code in _SENSITIVITY_LABELS:
        return LabelKind.SENSITIVITY
    if code in _REFRAIN_LABELS:
        return LabelKind.REFRAIN_POLICY
    if code in _OBLIGATION_LABELS:
        return LabelKind.OBLIGATION_POLICY
    if code in _PURPOSE_LABELS:
        return LabelKind.PURPOSE_OF_USE
    return LabelKind.OTHER


# Code systems the writer codes with (HL7 v3 vocabulary and the terminologies C-CDA binds).
ACT_CODE = "2.16.840.1.113883.5.4"
ACT_CLASS = "2.16.840.1.113883.5.6"
ACT_REASON = "2.16.840.1.113883.5.8"
SNOMED_CT = "2.16.840.1.113883.6.96"

# Templates the writer emits besides those above (roots only; the writer says which release).
REASON_FOR_REFERRAL_SECTION = "1.3.6.1.4.1.19376.1.5.3.1.3.1"
PROBLEM_SECTION = "2.16.840.1.113883.10.20.22.2.5.1"
MEDICATIONS_SECTION = "2.16.840.1.113883.10.20.22.2.1.1"
ALLERGIES_SECTION = "2.16.840.1.113883.10.20.22.2.6.1"
RESULTS_SECTION = "2.16.840.1.113883.10.20.22.2.3.1"
VITAL_SIGNS_SECTION = "2.16.840.1.113883.10.20.22.2.4.1"
ASSESSMENT_SECTION = "2.16.840.1.113883.10.20.22.2.8"
PLAN_OF_TREATMENT_SECTION = "2.16.840.1.113883.10.20.22.2.10"
GOALS_SECTION = "2.16.840.1.113883.10.20.22.2.60"
MEDICATION_INFORMATION = "2.16.840.1.113883.10.20.22.4.23"
PLANNED_ACT = "2.16.840.1.113883.10.20.22.4.39"
PLANNED_ENCOUNTER = "2.16.840.1.113883.10.20.22.4.40"
PLANNED_PROCEDURE = "2.16.840.1.113883.10.20.22.4.41"
PLANNED_OBSERVATION = "2.16.840.1.113883.10.20.22.4.44"

# LOINC section codes the reader does not classify.
ASSESSMENT_CODE = "51848-0"
RESULTS_CODE = "30954-2"
VITAL_SIGNS_CODE = "8716-3"

# HL7 CDA R2 IG: Data Segmentation for Privacy (DS4P) R1 templates: the document, its mandatory
# provenance, the Privacy Markings section and entry, the Privacy Annotation organizer, and the
# Security Observation with its confidentiality, obligation, purpose of use and refrain kinds.
PRIVACY_SEGMENTED_DOCUMENT = "2.16.840.1.113883.3.3251.1.1"
MANDATORY_DOCUMENT_PROVENANCE = "2.16.840.1.113883.3.3251.1.2"
MANDATORY_DOCUMENT_ASSIGNED_AUTHOR = "2.16.840.1.113883.3.3251.1.3"
PRIVACY_ANNOTATION = "2.16.840.1.113883.3.3251.1.4"
PRIVACY_MARKINGS_SECTION = "2.16.840.1.113883.3.3251.1.5"
PRIVACY_MARKINGS_ENTRY = "2.16.840.1.113883.3.3251.1.9"
SECURITY_OBSERVATION = "2.16.840.1.113883.3.445.21"
CONFIDENTIALITY_SECURITY_OBSERVATION = "2.16.840.1.113883.3.445.12"
OBLIGATION_SECURITY_OBSERVATION = "2.16.840.1.113883.3.445.14"
PURPOSE_OF_USE_SECURITY_OBSERVATION = "2.16.840.1.113883.3.445.22"
REFRAIN_SECURITY_OBSERVATION = "2.16.840.1.113883.3.445.23"
# The code system DS4P R1 binds the Security Observation's code to (CONF:16838): the HL7
# SecurityObservationType identifier, as the IG writes it.
SECURITY_OBSERVATION_TYPE = "2.16.840.1.113883.1.11.20457"
