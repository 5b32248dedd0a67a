"""HL7 v2 adapter tests, and the sample messages they share (plain builders, no fixtures)."""

from datetime import UTC, datetime

AT = datetime(2024, 3, 10, 12, 0, 0, tzinfo=UTC)


def segment(name: str, fields: dict[int, str]) -> str:
    """A segment line from {field number: raw ER7 text}; the fields in between are empty."""
    last = max(fields)
    return "|".join([name, *(fields.get(number, "") for number in range(1, last + 1))])


def message(*segments: str, terminator: str = "\r") -> bytes:
    """Segments joined with `terminator` after each, as UTF-8."""
    return "".join(line + terminator for line in segments).encode("utf-8")


REFERRAL_MSH = (
    "MSH|^~\\&|CLINIC-EHR|NORTHSIDE^2.16.840.1.113883.3.1234^ISO|RECOVERY-INTEROP|HARBOR|"
    "20240305143000-0500||REF^I12^REF_I12|REF-0001|P|2.5.1|||AL|NE||UNICODE UTF-8"
)
REFERRAL_RF1 = segment(
    "RF1",
    {
        1: "A^Accepted^HL70283",
        2: "S^STAT^HL70280",
        3: "RB^Rehabilitation^HL70281",
        5: "O^Outpatient^HL70284",
        6: "R-2024-0042^NORTHSIDE",
        7: "20240305",
        8: "20240405",
        10: "SUD^Substance use disorder treatment^L~F10.20^Alcohol dependence^I10",
        11: "EXT-77^HIE",
    },
)
REFERRAL_PID = segment(
    "PID",
    {
        1: "1",
        3: "MRN-555^^^NORTHSIDE&2.16.840.1.113883.3.1234&ISO^MR"
        "~123-45-6789^^^SSA&2.16.840.1.113883.4.1&ISO^SS",
        5: "O'Brien\\T\\Sons^Patrick^J^Jr~Pat^^^^^^N",
        7: "19850214",
        8: "M",
        11: "77 Lake St\\R\\Apt 2^^Springfield^IL^62703^USA^H",
        13: "^PRN^PH^^1^217^5550123~^NET^Internet^pob@example.org",
        14: "^WPN^PH^^1^217^5550456",
    },
)
REFERRAL_SEGMENTS = (
    REFERRAL_MSH,
    REFERRAL_RF1,
    "AUT|MCD^Medicaid plan^L|MCDSTATE^State Medicaid^L|State Medicaid|20240301|20240601|"
    "AUTH-991^MCDSTATE|||12",
    segment(
        "PRD",
        {
            1: "RP^Referring Provider^HL70286",
            2: "Nguyen^Linh^T^^Dr^MD",
            3: "12 Elm St^Suite 4^Springfield^IL^62701^USA^B",
            4: "^^^NORTHSIDE CLINIC",
            5: "^WPN^PH^^1^217^5550100~^NET^Internet^lnguyen@northside.example",
            7: "1234567890^NPI",
        },
    ),
    segment(
        "PRD",
        {
            1: "RT^Referred to Provider^HL70286",
            2: "Okafor^Ada",
            3: "400 Harbor Rd^^Springfield^IL^62702",
            4: "^^^HARBOR RECOVERY",
            5: "^WPN^PH^^1^217^5550199",
            10: "Harbor Recovery Center^^^^^HARBOR^XX^^^H-01",
        },
    ),
    REFERRAL_PID,
    "DG1|1||F10.20^Alcohol dependence, uncomplicated^I10||20240301|W",
    segment("PV1", {1: "1", 2: "O", 3: "OUTPT^^^NORTHSIDE", 8: "1234567890^Nguyen^Linh"}),
    "NTE|1|P|Patient prefers afternoon appointments.~Needs transport\\E\\childcare help.",
    "NTE|2|P|Line one\\.br\\line two",
)
REFERRAL = message(*REFERRAL_SEGMENTS)

DISCHARGE_SEGMENTS = (
    "MSH|^~\\&|HOSP-ADT|MERCY^2.16.840.1.113883.3.99^ISO|RECOVERY-INTEROP|HARBOR|"
    "20240310091500+0000||ADT^A03^ADT_A03|ADT-7781|P|2.5.1",
    "EVN|A03|20240310091500+0000|||nurse01^Diaz^Rosa|20240310090000+0000",
    "PID|1||MRN-888^^^MERCY^MR||Smith^Jane^Q||19790704|F|||1 Main St^^Springfield^IL^62704||"
    "^PRN^PH^^1^217^5550777",
    segment(
        "PV1",
        {
            1: "1",
            2: "I",
            3: "DETOX^201^B^MERCY^^^WEST^2",
            7: "2222^Patel^Ravi",
            19: "VN-4455^^^MERCY^VN",
            36: "01^Discharged to home or self care^HL70112",
            37: "RES&Residential treatment&L^20240310",
            39: "MERCY-MAIN",
            44: "20240301080000+0000",
            45: "20240310083000+0000",
        },
    ),
    "DG1|1||F11.20^Opioid dependence, uncomplicated^I10||20240301|F",
)
DISCHARGE = message(*DISCHARGE_SEGMENTS)


def discharge_asking(accept: str, application: str, control_id: str = "ADT-7781") -> bytes:
    """DISCHARGE in enhanced mode: MSH-15 `accept`, MSH-16 `application` (table 0155)."""
    msh = DISCHARGE_SEGMENTS[0].replace("|ADT-7781|", f"|{control_id}|")
    return message(f"{msh}|||{accept}|{application}", *DISCHARGE_SEGMENTS[1:])


INCOMING_ACK = message(
    "MSH|^~\\&|CLINIC-EHR|NORTHSIDE|RECOVERY-INTEROP|HARBOR|20240310120500+0000||ACK^I12^ACK|"
    "NS-ACK-9|P|2.5.1",
    "MSA|AE|OUT-0001|Patrick O'Brien is not known here",
    "ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||Patrick O'Brien is not known here",
)
"""An acknowledgment a partner sends to our listener (of a message of ours, or by mistake); its
texts quote a patient, as a partner's ACK may."""
