"""The code systems and codes the Part 2 engine reasons with, and the purpose-of-use hierarchy.

Purposes of use are v3-ActReason codes (PART2.md S4). Their hierarchy is copied from the HL7
Terminology (THO) code system http://terminology.hl7.org/CodeSystem/v3-ActReason, concept
`PurposeOfUse` and its descendants (THO 6.x/7.x: TREAT ⊃ {CLINTRL, COC, ETREAT ⊃ {BTG, ERTREAT},
POPHLTH}; HOPERAT ⊃ {CAREMGT, ..., HLEGAL, ..., HSYSADMIN ⊃ {LABELING, METAMGT}, SYSDEV ⊃ {HTEST}};
HPAYMT ⊃ {..., COVERAGE ⊃ {ELIGDTRM, ...}}; HRESCH ⊃ {..., CLINTRCH ⊃ {...}}; PATRQT ⊃ {FAMRQT,
PWATRNY, SUPNWK}; PUBHLTH ⊃ {DISASTER, THREAT}; HMARKT). A code not listed here is still a
purpose: it covers only itself.

Security labels follow the HL7 DS4P conventions (v3-Confidentiality, v3-ActCode sensitivity,
privacy law and refrain policy codes). Retired spellings that partners still send (ETH for SUD,
NORDSLCD for NORDSCLCD) are recognised on input and never produced.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PARTICIPATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CONSENT_ACTION: Final = "http://terminology.hl7.org/CodeSystem/consentaction"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC: Final = "http://loinc.org"
SNOMED_CT: Final = "http://snomed.info/sct"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
PREFIX_HIERARCHIES: Final = frozenset({ICD10CM, "http://hl7.org/fhir/sid/icd-10"})
"""Code systems whose codes nest by prefix (ICD-10-CM F11 > F11.2 > F11.20): a refusal of a
category reaches every code under it."""
RESOURCE_TYPES: Final = "http://hl7.org/fhir/resource-types"

# The same code systems as partners also spell them: the HL7 OIDs (v3 vocabulary as used in
# CDA and by many FHIR servers) and the pre-THO FHIR URLs (DSTU2/STU3 `http://hl7.org/fhir/v3/...`).
SYSTEM_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "urn:oid:2.16.840.1.113883.5.8": ACT_REASON,
        "http://hl7.org/fhir/v3/ActReason": ACT_REASON,
        "urn:oid:2.16.840.1.113883.5.4": ACT_CODE,
        "http://hl7.org/fhir/v3/ActCode": ACT_CODE,
        "urn:oid:2.16.840.1.113883.5.25": CONFIDENTIALITY,
        "http://hl7.org/fhir/v3/Confidentiality": CONFIDENTIALITY,
        "urn:oid:2.16.840.1.113883.5.90": PARTICIPATION_TYPE,
        "http://hl7.org/fhir/v3/ParticipationType": PARTICIPATION_TYPE,
        "urn:oid:2.16.840.1.113883.5.111": ROLE_CODE,
        "http://hl7.org/fhir/v3/RoleCode": ROLE_CODE,
        "http://hl7.org/fhir/consentaction": CONSENT_ACTION,
        # The clinical terminologies, as C-CDA and OID-based systems name them.
        "urn:oid:2.16.840.1.113883.6.96": SNOMED_CT,
        "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
        "urn:oid:2.16.840.1.113883.6.3": "http://hl7.org/fhir/sid/icd-10",
        "urn:oid:2.16.840.1.113883.6.103": "http://hl7.org/fhir/sid/icd-9-cm",
        "urn:oid:2.16.840.1.113883.6.1": LOINC,
        "urn:oid:2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "urn:oid:2.16.840.1.113883.6.12": "http://www.ama-assn.org/go/cpt",
        "urn:oid:2.16.840.1.113883.6.69": "http://hl7.org/fhir/sid/ndc",
    }
)


def canonical_system(system: str | None) -> str | None:
    """The FHIR URL of a code system partners may spell as an OID or an older FHIR URL."""
    if system is None:
        return None
    return SYSTEM_ALIASES.get(system, system)


NPI: Final = "http://hl7.org/fhir/sid/us-npi"
# Identifier systems as partners also spell them: C-CDA, IHE and OID-based consent documents
# name the NPI and the SSN by their HL7 OIDs.
IDENTIFIER_SYSTEM_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "urn:oid:2.16.840.1.113883.4.6": NPI,
        "urn:oid:2.16.840.1.113883.4.1": "http://hl7.org/fhir/sid/us-ssn",
    }
)


def canonical_identifier_system(system: str | None) -> str | None:
    """The FHIR URL of an identifier system partners may spell as an OID."""
    if system is None:
        return None
    return IDENTIFIER_SYSTEM_ALIASES.get(system, system)


# v3-ActReason purposes of use: child -> parent, below the abstract `PurposeOfUse` concept.
PURPOSE_PARENT: Final[Mapping[str, str]] = MappingProxyType(
    {
        "CLINTRL": "TREAT",
        "COC": "TREAT",
        "ETREAT": "TREAT",
        "BTG": "ETREAT",
        "ERTREAT": "ETREAT",
        "POPHLTH": "TREAT",
        "CAREMGT": "HOPERAT",
        "DONAT": "HOPERAT",
        "FRAUD": "HOPERAT",
        "GOV": "HOPERAT",
        "HACCRED": "HOPERAT",
        "HCOMPL": "HOPERAT",
        "HDECD": "HOPERAT",
        "HDIRECT": "HOPERAT",
        "HDM": "HOPERAT",
        "HLEGAL": "HOPERAT",
        "HOUTCOMS": "HOPERAT",
        "HPRGRP": "HOPERAT",
        "HQUALIMP": "HOPERAT",
        "HSYSADMIN": "HOPERAT",
        "LABELING": "HSYSADMIN",
        "METAMGT": "HSYSADMIN",
        "MEMADMIN": "HOPERAT",
        "MILCDM": "HOPERAT",
        "PATADMIN": "HOPERAT",
        "PATSFTY": "HOPERAT",
        "PERFMSR": "HOPERAT",
        "RECORDMGT": "HOPERAT",
        "SYSDEV": "HOPERAT",
        "HTEST": "SYSDEV",
        "TRAIN": "HOPERAT",
        "CLMATTCH": "HPAYMT",
        "COVAUTH": "HPAYMT",
        "COVERAGE": "HPAYMT",
        "ELIGDTRM": "COVERAGE",
        "ELIGVER": "COVERAGE",
        "ENROLLM": "COVERAGE",
        "MILDCRG": "COVERAGE",
        "REMITADV": "HPAYMT",
        "BIORCH": "HRESCH",
        "CLINTRCH": "HRESCH",
        "CLINTRCHNPC": "CLINTRCH",
        "CLINTRCHPC": "CLINTRCH",
        "PRECLINTRCH": "CLINTRCH",
        "DSRCH": "HRESCH",
        "POARCH": "HRESCH",
        "TRANSRCH": "HRESCH",
        "FAMRQT": "PATRQT",
        "PWATRNY": "PATRQT",
        "SUPNWK": "PATRQT",
        "DISASTER": "PUBHLTH",
        "THREAT": "PUBHLTH",
    }
)
TOP_PURPOSES: Final = frozenset(
    {"HMARKT", "HOPERAT", "HPAYMT", "HRESCH", "PATRQT", "PUBHLTH", "TREAT"}
)
TREAT: Final = "TREAT"
HPAYMT: Final = "HPAYMT"
HOPERAT: Final = "HOPERAT"
HLEGAL: Final = "HLEGAL"
HRESCH: Final = "HRESCH"
ETREAT: Final = "ETREAT"
# The three purposes a single TPO consent covers (§2.31(a)(5), §2.33(b)).
TPO_PURPOSES: Final = frozenset({TREAT, HPAYMT, HOPERAT})
# Purposes that no ancestor code covers: HLEGAL sits under HOPERAT, but use in proceedings
# against the patient needs its own consent (§2.31(d), PART2.md C4 and S4).
NOT_SUBSUMED: Final = frozenset({HLEGAL})


def _closure(code: str) -> frozenset[str]:
    if code in NOT_SUBSUMED:
        return frozenset({code})
    codes = {code}
    while code in PURPOSE_PARENT:
        code = PURPOSE_PARENT[code]
        codes.add(code)
    return frozenset(codes)


_CLOSURES: Final = {code: _closure(code) for code in (*PURPOSE_PARENT, *TOP_PURPOSES)}


def purpose_closure(code: str) -> frozenset[str]:
    """The purpose and every purpose that covers it (HLEGAL is covered by nothing but itself)."""
    closure = _CLOSURES.get(code)
    return closure if closure is not None else frozenset({code})


# v3-Confidentiality, lowest to highest: a label covers everything at or below it (DS4P).
CONFIDENTIALITY_RANK: Final[Mapping[str, int]] = MappingProxyType(
    {"U": 0, "L": 1, "M": 2, "N": 3, "R": 4, "V": 5}
)
RESTRICTED: Final = "R"

# v3-ActCode sensitivity codes for SUD information. ETH is the retired "substance abuse"
# code, accepted on input as SUD.
SUD: Final = "SUD"
ETHUD: Final = "ETHUD"
OPIOIDUD: Final = "OPIOIDUD"
ETH: Final = "ETH"
SUD_SPECIFIC: Final = frozenset({ETHUD, OPIOIDUD})
SUD_SENSITIVITY: Final = frozenset({SUD, ETHUD, OPIOIDUD, ETH})
# What a consent label covers among item labels (subsumption in v3-ActCode).
SENSITIVITY_COVERS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        SUD: SUD_SENSITIVITY,
        ETH: SUD_SENSITIVITY,
        ETHUD: frozenset({ETHUD}),
        OPIOIDUD: frozenset({OPIOIDUD}),
    }
)
# v3-ActCode PSYTHPN (psychotherapy note information sensitivity) marks SUD counseling notes,
# the Part 2 analogue of HIPAA psychotherapy notes (§2.11 "SUD counseling notes").
COUNSELING_NOTE: Final = "PSYTHPN"
# v3-ActCode privacy law, refrain policies and obligation.
LAW_42CFR_PART2: Final = "42CFRPart2"
NO_REDISCLOSURE: Final = "NORDSCLCD"
NO_REDISCLOSURE_RETIRED: Final = "NORDSLCD"
# The obligation a CDS Hooks consent decision (patient-consent-consult) returns for withheld data.
REDACT: Final = "REDACT"
# v3-ActCode consent directive type for a Part 2 consent, and the LOINC consent document types
# (PART2.md "FHIR shapes": either LOINC code, with 42CFRPart2CD).
PART2_CONSENT_DIRECTIVE: Final = "42CFRPart2CD"
LOINC_PATIENT_CONSENT: Final = "59284-0"
LOINC_RELEASE_OF_INFORMATION: Final = "64292-6"
PATIENT_PRIVACY: Final = "patient-privacy"
# v3-ActCode consent directive base policies that make a consent the patient's refusal:
# opt-out, and opt-out with exceptions (its permits).
OPT_OUT: Final = "OPTOUT"
OPT_OUT_POLICIES: Final = frozenset({OPT_OUT, "OPTOUTE"})

# v3-ParticipationType roles of Consent.provision.actor.
RECIPIENT_ROLES: Final = frozenset({"IRCP", "PRCP"})
SOURCE_ROLES: Final = frozenset({"CST", "AUT"})
IRCP: Final = "IRCP"

# consentaction codes; a disclosure request defaults to `disclose`. A refusal that names any
# action but `collect` (access, use, correct, disclose, or one not known here) withholds the
# record from disclosure (PART2.md C8): only "do not collect" says nothing about sharing.
DISCLOSE: Final = "disclose"
COLLECT: Final = "collect"

# §2.51 lets a program disclose "to the extent necessary to meet a bona fide medical
# emergency": the clinical summary an emergency clinician acts on. Counseling notes, the
# consent and payment records and free documents are never part of it.
EMERGENCY_RESOURCE_TYPES: Final = frozenset(
    {
        "AllergyIntolerance",
        "Condition",
        "DiagnosticReport",
        "Immunization",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
    }
)
