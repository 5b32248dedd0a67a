"""A synthetic client's recovery story, end to end, for `interop demo` and the story tests.

Jordan Rivers (a synthetic person) is admitted to Harbor Detox Unit, gets a care plan with
goals in eight domains case managers work (housing, job-protected leave, transportation,
benefits, medication continuity, legal obligations, family, primary care), is referred to
Riverside Residential, handed off there, then to Bayview Intensive Outpatient, then to
Lakeside Recovery Community for aftercare.

Each record is written by a case manager of the program it comes from (the detox unit's
intake by Harbor Detox, each handoff by the program handing off, each episode by the program
that opens it), because a record's origin is what the disclosure gate classifies
Part 2 data by. Jordan's consent (PART2.md's §2.31 table) lets the Part 2 programs of the
story disclose to the programs that follow, for treatment, on a form compliance staff approved
(PART2.md C9): `approve_form` records that approval before the story is entered, as
`interop forms approve` would, since a consent never vouches for its own form.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from consent import vocabulary as v
from consent.model import (
    Actor,
    Coding,
    ConsentDirective,
    ConsentKind,
    ConsentStatus,
    Provision,
    ProvisionType,
    Signer,
    SignerRole,
)
from consent.model import Identifier as ConsentIdentifier
from consent.model import Period as ConsentPeriod
from interop.services.cases import KINDS_BY_NAME, Kind
from interop.services.forms import ApprovedForm, ConsentForms
from mappings.consent import REDISCLOSURE_RISK, RIGHT_TO_REVOKE
from mappings.model import (
    Achievement,
    Action,
    ActionOwner,
    Activity,
    ActivityKind,
    Barrier,
    CarePlan,
    CaseManager,
    ChecklistItem,
    Client,
    Concept,
    ConcernKind,
    Episode,
    EpisodeStatus,
    Gender,
    Goal,
    GoalDomain,
    GoalLifecycle,
    Handoff,
    Id,
    Identifier,
    LevelOfCare,
    Name,
    Party,
    PartyKind,
    Period,
    Program,
    ProgramKind,
    Quantity,
    Ref,
    Referral,
    RequestStatus,
    Target,
    TaskStatus,
    TransitionItem,
    Urgency,
)
from mappings.terminology import NPI_SYSTEM, REFERRAL_TO_DRUG_REHABILITATION

CLIENT = "jordan-rivers"
CONSENT = "consent-jordan"
FORM = "https://forms.example.org/recovery-story/part2-consent/v1"
"""The consent form Jordan signed, as the consent names it (`policy.uri`)."""
FORM_STATEMENTS = (RIGHT_TO_REVOKE, REDISCLOSURE_RISK)
"""What the form states: the right to revoke (§2.31(a)(6)) and, the recipients being covered
entities receiving for treatment, that they may redisclose under HIPAA (§2.31(a)(4)(iii))."""
SIGNED_FORM = "https://forms.example.org/recovery-story/signed/jordan-rivers-2026-06-02.pdf"
MRN = Identifier("urn:oid:2.16.840.1.113883.3.9999.2", "DEMO-0001")
_UCUM = "http://unitsofmeasure.org"


def _program(ident: str, name: str, kind: ProgramKind, part2: bool, npi: str) -> Program:
    return Program(
        id=Id(ident),
        name=name,
        part2_program=part2,
        kind=kind,
        covered_entity=True,
        identifiers=(Identifier(NPI_SYSTEM, npi),),
    )


PROGRAMS = (
    _program("harbor-detox", "Harbor Detox Unit", ProgramKind.DETOX, True, "1093817462"),
    _program(
        "riverside-residential",
        "Riverside Residential",
        ProgramKind.RESIDENTIAL,
        True,
        "1184627390",
    ),
    _program(
        "bayview-iop", "Bayview Intensive Outpatient", ProgramKind.OUTPATIENT, True, "1275936106"
    ),
    _program(
        "northside-primary", "Northside Primary Care", ProgramKind.PRIMARY_CARE, False, "1366045817"
    ),
    _program(
        "lakeside-recovery",
        "Lakeside Recovery Community",
        ProgramKind.COMMUNITY_SERVICE,
        True,  # SUD recovery support, federally assisted: a Part 2 program too
        "1457154528",
    ),
)

_GOALS: tuple[tuple[str, GoalDomain, str, str | None, tuple[int, str, str] | None], ...] = (
    (
        "goal-housing",
        GoalDomain.HOUSING,
        "Move into stable housing before discharge",
        "Nights in own housing",
        (30, "day", "d"),
    ),
    (
        "goal-leave",
        GoalDomain.JOB_PROTECTED_LEAVE,
        "FMLA leave approved while in residential treatment",
        None,
        None,
    ),
    (
        "goal-transport",
        GoalDomain.TRANSPORTATION,
        "Reliable rides to IOP sessions",
        "Sessions attended",
        (12, "sessions", "{session}"),
    ),
    (
        "goal-benefits",
        GoalDomain.INSURANCE_BENEFITS,
        "Medicaid prior authorization for residential care",
        None,
        None,
    ),
    (
        "goal-mat",
        GoalDomain.MEDICATION_CONTINUITY,
        "Buprenorphine continued without a gap across every handoff",
        "Days without a missed dose",
        (90, "day", "d"),
    ),
    ("goal-legal", GoalDomain.LEGAL, "Drug court compliance letters filed on time", None, None),
    ("goal-family", GoalDomain.FAMILY_INVOLVEMENT, "Family joins two sessions a month", None, None),
    (
        "goal-primary",
        GoalDomain.PRIMARY_CARE,
        "Established with a primary care clinician",
        None,
        None,
    ),
)


def _goal(spec: tuple[str, GoalDomain, str, str | None, tuple[int, str, str] | None]) -> Goal:
    ident, domain, text, measure, amount = spec
    targets: tuple[Target, ...] = ()
    if measure is not None and amount is not None:
        value, unit, code = amount
        quantity = Quantity(Decimal(value), unit, _UCUM, code)
        targets = (Target(Concept(text=measure), quantity, date(2026, 9, 30)),)
    return Goal(
        id=Id(ident),
        client_id=Ref(CLIENT),
        description=Concept(text=text),
        lifecycle=GoalLifecycle.ACTIVE,
        domain=domain,
        achievement=Achievement.IN_PROGRESS,
        start=date(2026, 6, 2),
        targets=targets,
        expressed_by=Party(PartyKind.CLIENT, Ref(CLIENT)),
    )


def _episode(
    ident: str, program: str, level: LevelOfCare, start: date, end: date | None
) -> Episode:
    return Episode(
        id=Id(ident),
        client_id=Ref(CLIENT),
        program_id=Ref(program),
        status=EpisodeStatus.FINISHED if end else EpisodeStatus.ACTIVE,
        level=level,
        period=Period(start, end),
        care_manager_id=Ref("cm-harbor"),
    )


def _handoff(
    ident: str,
    referral: str,
    origin: tuple[str, str, LevelOfCare],
    target: tuple[str, LevelOfCare],
    day: date,
    status: TaskStatus,
) -> Handoff:
    from_program, from_episode, from_level = origin
    to_program, to_level = target
    return Handoff(
        id=Id(ident),
        referral_id=Id(referral),
        client_id=Ref(CLIENT),
        from_program_id=Ref(from_program),
        from_episode_id=Ref(from_episode),
        from_level=from_level,
        to_program_id=Ref(to_program),
        to_level=to_level,
        planned_date=day,
        authored_on=datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC),
        status=status,
        transfer_summary=Ref(f"{ident}-transfer-summary"),
        consent=Ref(CONSENT),
        medication_reconciliation=Ref(f"{ident}-medrec"),
        checklist=(
            ChecklistItem(TransitionItem.RECORDS_SENT, True),
            ChecklistItem(TransitionItem.MEDICATIONS_ON_HAND, True),
            ChecklistItem(TransitionItem.INTAKE_CONFIRMED, status is TaskStatus.COMPLETED),
        ),
        transportation_arranged=True,
    )


@dataclass(frozen=True, slots=True)
class Seed:
    """One record of the story and the program whose case manager writes it."""

    kind: Kind[Any]
    value: Any
    program: str


@dataclass(frozen=True, slots=True)
class StoryPartner:
    """A program of the story that reads it as a partner system (SMART Backend Services)."""

    program: Program
    key_name: str

    @property
    def identifier(self) -> Identifier:
        return self.program.identifiers[0]


PARTNER_SCOPES = "system/*.rs system/Task.cru"
PARTNERS = tuple(
    StoryPartner(program, str(program.id)) for program in PROGRAMS if program.id != "harbor-detox"
)
STAFF = (
    ("casey.manager", "case-manager", ("harbor-detox",)),
    ("riley.residential", "case-manager", ("riverside-residential",)),
    ("morgan.compliance", "compliance-officer", ()),
    ("ada.admin", "administrator", ()),
)
"""The staff accounts the demo suggests: username, role, programs."""


def approve_form(forms: ConsentForms) -> ApprovedForm:
    """Compliance staff approve the form Jordan's consent was signed on, once (PART2.md C9)."""
    title = "Consent to disclose SUD records (recovery story)"
    return forms.approve(FORM, title, FORM_STATEMENTS, "interop demo")


def consent() -> ConsentDirective:
    """Jordan's consent in PART2.md's representation: (a) the patient, (b) the Part 2 programs
    of the story as disclosers, (c) all SUD records, (d) the programs that follow as IRCP
    recipients with their NPIs, (e) treatment, (f) the form it was signed on (`FORM`, whose
    statements are its approval's, `approve_form`), (g) a period end, (h) signed by the patient
    with the signed copy on file, (i) the date signed."""
    disclosers = tuple(
        _program_actor(program, None) for program in PROGRAMS if program.part2_program
    )
    recipients = tuple(
        _program_actor(program, Coding(v.PARTICIPATION_TYPE, v.IRCP))
        for program in PROGRAMS
        if program.id != "harbor-detox"
    )
    permit = Provision(
        type=ProvisionType.PERMIT,
        period=ConsentPeriod(
            datetime(2026, 6, 2, tzinfo=UTC), datetime(2027, 6, 1, 23, 59, 59, tzinfo=UTC)
        ),
        actors=recipients,
        purposes=(Coding(v.ACT_REASON, v.TREAT),),
        security_labels=(Coding(v.ACT_CODE, v.SUD),),
    )
    return ConsentDirective(
        id=CONSENT,
        status=ConsentStatus.ACTIVE,
        patient=f"Patient/{CLIENT}",
        patient_name="Jordan Rivers",
        disclosers=disclosers,
        kind=ConsentKind.GENERAL,
        signed_at=datetime(2026, 6, 2, 15, 30, tzinfo=UTC),
        signers=(Signer(SignerRole.PATIENT, f"Patient/{CLIENT}"),),
        has_signed_form=True,
        form=FORM,
        signed_form=SIGNED_FORM,
        provision=permit,
    )


def _program_actor(program: Program, role: Coding | None) -> Actor:
    return Actor(
        role,
        f"Organization/{program.id}",
        tuple(ConsentIdentifier(i.system, i.value) for i in program.identifiers),
        program.name,
    )


def story() -> list[Seed]:
    """Every record of the story, in the order the case managers would enter them."""
    client = Client(
        id=Id(CLIENT),
        identifiers=(MRN,),
        names=(Name(family="Rivers", given=("Jordan",)),),
        gender=Gender.UNKNOWN,
        birth_date=date(1991, 8, 14),
    )
    detox, residential, iop = (
        LevelOfCare.WM_INPATIENT_MONITORED,
        LevelOfCare.RESIDENTIAL_HIGH_INTENSITY,
        LevelOfCare.INTENSIVE_OUTPATIENT,
    )
    goals = [_goal(spec) for spec in _GOALS]
    barrier = Barrier(
        id=Id("barrier-housing"),
        client_id=Ref(CLIENT),
        code=Concept(text="Staying with a friend; no lease"),
        kind=ConcernKind.HEALTH_CONCERN,
        domain=GoalDomain.HOUSING,
    )
    action = Action(
        id=Id("action-fmla-forms"),
        client_id=Ref(CLIENT),
        title="Send FMLA certification to the employer's HR",
        owner=ActionOwner.CASE_MANAGER,
        status=TaskStatus.IN_PROGRESS,
        plan_id=Ref("plan-jordan"),
        goal_ids=(Ref("goal-leave"),),
        due=date(2026, 6, 12),
    )
    referral = Referral(
        id=Id("referral-residential"),
        client_id=Ref(CLIENT),
        requester=Party(PartyKind.PROGRAM, Ref("harbor-detox")),
        status=RequestStatus.ACTIVE,
        service=REFERRAL_TO_DRUG_REHABILITATION,
        authored_on=datetime(2026, 6, 3, 10, 0, tzinfo=UTC),
        performer_id=Ref("riverside-residential"),
        urgency=Urgency.URGENT,
        requested_level=residential,
        reason="Completing withdrawal management; needs residential treatment",
        goal_ids=(Ref("goal-mat"),),
        consents=(Ref(CONSENT),),
    )
    plan = CarePlan(
        id=Id("plan-jordan"),
        client_id=Ref(CLIENT),
        status=RequestStatus.ACTIVE,
        title="Jordan's recovery plan",
        period=Period(date(2026, 6, 2), date(2026, 12, 31)),
        author=Party(PartyKind.PROGRAM, Ref("harbor-detox")),
        goal_ids=tuple(Ref(goal.id) for goal in goals),
        barrier_ids=(Ref("barrier-housing"),),
        activities=(
            Activity(ActivityKind.ACTION, Ref("action-fmla-forms")),
            Activity(ActivityKind.REFERRAL, Ref("referral-residential")),
        ),
    )
    kinds = KINDS_BY_NAME
    harbor = "harbor-detox"
    seeds = [Seed(kinds["programs"], program, str(program.id)) for program in PROGRAMS]
    seeds += [
        Seed(
            kinds["case-managers"],
            CaseManager(Id("cm-harbor"), Ref("practitioner-avery"), Ref(harbor)),
            harbor,
        ),
        Seed(kinds["clients"], client, harbor),
        Seed(kinds["consents"], consent(), harbor),
        Seed(
            kinds["episodes"],
            _episode("episode-detox", harbor, detox, date(2026, 6, 1), date(2026, 6, 8)),
            harbor,
        ),
        *(Seed(kinds["goals"], goal, harbor) for goal in goals),
        Seed(kinds["barriers"], barrier, harbor),
        Seed(kinds["actions"], action, harbor),
        Seed(kinds["referrals"], referral, harbor),
        Seed(kinds["care-plans"], plan, harbor),
    ]
    seeds += _level(
        _handoff(
            "handoff-to-residential",
            "referral-to-residential",
            (harbor, "episode-detox", detox),
            ("riverside-residential", residential),
            date(2026, 6, 8),
            TaskStatus.COMPLETED,
        ),
        _episode(
            "episode-residential",
            "riverside-residential",
            residential,
            date(2026, 6, 8),
            date(2026, 7, 20),
        ),
    )
    seeds += _level(
        _handoff(
            "handoff-to-iop",
            "referral-to-iop",
            ("riverside-residential", "episode-residential", residential),
            ("bayview-iop", iop),
            date(2026, 7, 20),
            TaskStatus.COMPLETED,
        ),
        _episode("episode-iop", "bayview-iop", iop, date(2026, 7, 20), date(2026, 10, 12)),
    )
    seeds += _level(
        _handoff(
            "handoff-to-aftercare",
            "referral-to-aftercare",
            ("bayview-iop", "episode-iop", iop),
            ("lakeside-recovery", LevelOfCare.RECOVERY_SUPPORT),
            date(2026, 10, 12),
            TaskStatus.ACCEPTED,
        ),
        _episode(
            "episode-aftercare",
            "lakeside-recovery",
            LevelOfCare.RECOVERY_SUPPORT,
            date(2026, 10, 12),
            None,
        ),
    )
    return seeds


def _level(handoff: Handoff, episode: Episode) -> list[Seed]:
    """A handoff, written by the program handing off (a case-API handoff carries no execution
    period or output, so it is entered as it stands rather than moved step by step), and the
    episode the receiving program opens, written by the receiving program."""
    return [
        Seed(KINDS_BY_NAME["handoffs"], handoff, str(handoff.from_program_id)),
        Seed(KINDS_BY_NAME["episodes"], episode, str(handoff.to_program_id)),
    ]
