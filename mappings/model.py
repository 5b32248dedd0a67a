"""The case-management domain as frozen typed values, with no FHIR in sight.

Who is served (Client), by whom (Program, CaseManager), at which level of care (Episode), toward
what (CarePlan, Goal, Barrier, Action) and where next (Referral, ReferralTask, Handoff). The
mappings beside this module translate each value to and from its FHIR R4 resource; the codes
behind the enumerations (and which of them are local) live in `mappings.terminology`.

Every value has a stable `id` with FHIR id syntax, so that mapping is deterministic. Values refer
to one another by `Ref`: the id of a resource on this server (written as "Type/id") or an
absolute URL of a resource on another server, kept exactly as written. Consents belong to the
consent engine (`consent.model`); the domain holds only a `ConsentRef`.

Dates follow FHIR: `date` where FHIR has a date, `When` (a date or a timezone-aware datetime)
where FHIR has a dateTime. Values check their own invariants on construction and raise
ValueError; the mappings turn what cannot be built from FHIR into MappingError.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, TypeAlias

from pydantic import BeforeValidator
from pydantic_core import CoreSchema, core_schema

_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ABSOLUTE: Final = re.compile(
    r"https?://[^\s/]+(/\S*)?|urn:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
)
_CODE: Final = re.compile(r"[^\s]+( [^\s]+)*")
_URI: Final = re.compile(r"\S+")
_RESOURCE_TYPE: Final = re.compile(r"[A-Z][A-Za-z]+")
_LATEST_ZONE: Final = timezone(timedelta(hours=-12))
_EARLIEST_ZONE: Final = timezone(timedelta(hours=14))


class Id(str):
    """A FHIR id: 1 to 64 letters, digits, "-" and "." (R4 §2.24.0.1)."""

    __slots__ = ()

    def __new__(cls, value: str) -> "Id":
        if not _ID.fullmatch(value):
            raise ValueError(f"not a FHIR id: {value[:70]!r}")
        return super().__new__(cls, value)

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> CoreSchema:
        """Typed request and response bodies (the case API) validate it as a checked string."""
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema()
        )


class Ref(str):
    """A reference: the id of a resource here, or an absolute URL (http, https, urn:uuid)."""

    __slots__ = ()

    def __new__(cls, value: str) -> "Ref":
        if not (_ID.fullmatch(value) or _ABSOLUTE.fullmatch(value)):
            raise ValueError(f"not a FHIR id or an absolute URL: {value[:70]!r}")
        return super().__new__(cls, value)

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> CoreSchema:
        """Typed request and response bodies (the case API) validate it as a checked string."""
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema()
        )

    @property
    def is_local(self) -> bool:
        """True for the id of a resource on this server, False for an absolute URL."""
        return _ID.fullmatch(self) is not None


ConsentRef: TypeAlias = Ref
"""A consent directive (FHIR Consent) owned by the consent engine, referred to by id or URL."""


def _instant_stays_instant(value: Any) -> Any:
    """A dateTime with a time of day is an instant, midnight included: left to the union,
    "2026-12-07T00:00:00+02:00" would be read as the date 2026-12-07, its time and zone lost."""
    if isinstance(value, str) and "T" in value:
        return datetime.fromisoformat(value)
    return value


When: TypeAlias = Annotated[date | datetime, BeforeValidator(_instant_stays_instant)]
"""A FHIR dateTime: a whole day, or an instant with its timezone."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _text(value: str | None, what: str) -> None:
    _require(value is None or value.strip() != "", f"{what} must not be blank")


def _aware(value: date | None, what: str) -> None:
    _require(
        not isinstance(value, datetime) or value.utcoffset() is not None,
        f"{what} must carry its timezone",
    )


def _ids_unique(values: tuple[str, ...], what: str) -> None:
    _require(len(set(values)) == len(values), f"{what} must not repeat")


@dataclass(frozen=True, slots=True)
class Code:
    """One code from a code system: the FHIR Coding, with the display as the system names it."""

    system: str
    code: str
    display: str | None = None

    def __post_init__(self) -> None:
        _require(_URI.fullmatch(self.system) is not None, "a code system is a URI")
        _require(_CODE.fullmatch(self.code) is not None, f"not a FHIR code: {self.code[:70]!r}")
        _text(self.display, "a display")


@dataclass(frozen=True, slots=True)
class Concept:
    """A concept as codes and/or text (FHIR CodeableConcept); at least one of the two."""

    codes: tuple[Code, ...] = ()
    text: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.codes) or self.text is not None, "a concept needs a code or text")
        _text(self.text, "a concept's text")


@dataclass(frozen=True, slots=True)
class Identifier:
    """A business identifier (MRN, NPI, placer number) in a namespace."""

    system: str | None
    value: str

    def __post_init__(self) -> None:
        _require(self.system is None or _URI.fullmatch(self.system) is not None, "bad system")
        _text(self.value, "an identifier value")


class ContactSystem(StrEnum):
    """FHIR R4 contact-point-system."""

    PHONE = "phone"
    FAX = "fax"
    EMAIL = "email"
    PAGER = "pager"
    URL = "url"
    SMS = "sms"
    OTHER = "other"


class ContactUse(StrEnum):
    """FHIR R4 contact-point-use."""

    HOME = "home"
    WORK = "work"
    TEMP = "temp"
    OLD = "old"
    MOBILE = "mobile"


@dataclass(frozen=True, slots=True)
class Contact:
    """A phone number, e-mail address and the like (FHIR ContactPoint)."""

    system: ContactSystem
    value: str
    use: ContactUse | None = None

    def __post_init__(self) -> None:
        _text(self.value, "a contact value")


class AddressUse(StrEnum):
    """FHIR R4 address-use."""

    HOME = "home"
    WORK = "work"
    TEMP = "temp"
    OLD = "old"
    BILLING = "billing"


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address (FHIR Address), as US Core asks for it: lines, city, state, ZIP."""

    lines: tuple[str, ...] = ()
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    use: AddressUse | None = None

    def __post_init__(self) -> None:
        for part in (*self.lines, self.city, self.state, self.postal_code, self.country):
            _text(part, "an address part")
        _require(
            any((self.lines, self.city, self.state, self.postal_code, self.country)),
            "an address needs at least one part",
        )


@dataclass(frozen=True, slots=True)
class Period:
    """A span of time; either end may be open, and the start is not after the end."""

    start: When | None = None
    end: When | None = None

    def __post_init__(self) -> None:
        _require(self.start is not None or self.end is not None, "a period needs a start or end")
        _aware(self.start, "a period start")
        _aware(self.end, "a period end")
        if self.start is not None and self.end is not None:
            _require(_in_order(self.start, self.end), "a period ends before it starts")


def _in_order(start: When, end: When) -> bool:
    """per-1, as the FHIR validator reads it: start may not be later than end.

    Two instants or two days compare directly. A day against an instant has no zone of its own
    (R4 §2.24.0.1), so the day must be in order in every zone from UTC-12:00 to UTC+14:00.
    """
    if isinstance(start, datetime) == isinstance(end, datetime):
        return start <= end
    earliest_start = (
        start if isinstance(start, datetime) else datetime.combine(start, time(), _LATEST_ZONE)
    )
    latest_end = (
        end if isinstance(end, datetime) else datetime.combine(end, time.max, _EARLIEST_ZONE)
    )
    return earliest_start <= latest_end


@dataclass(frozen=True, slots=True)
class Quantity:
    """A measured amount, with its unit (UCUM where it has one)."""

    value: Decimal
    unit: str | None = None
    system: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        _require(self.value.is_finite(), "a quantity is a finite number")
        _text(self.unit, "a unit")
        _require((self.system is None) == (self.code is None), "a unit code needs its system")


class PartyKind(StrEnum):
    """Who can ask, own, author or express: the FHIR resource type each kind is stored as."""

    CLIENT = "Patient"
    CASE_MANAGER = "PractitionerRole"
    PRACTITIONER = "Practitioner"
    PROGRAM = "Organization"
    RELATED_PERSON = "RelatedPerson"


@dataclass(frozen=True, slots=True)
class Party:
    """A reference to a person or organization together with what kind of party it is."""

    kind: PartyKind
    ref: Ref


@dataclass(frozen=True, slots=True)
class TypedRef:
    """A reference to a resource of any type (documents, encounters, procedures)."""

    resource_type: str
    ref: Ref

    def __post_init__(self) -> None:
        _require(_RESOURCE_TYPE.fullmatch(self.resource_type) is not None, "not a resource type")


class Gender(StrEnum):
    """FHIR R4 administrative-gender (US Core Patient requires it)."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Name:
    """A person's name; US Core asks for a family or a given name (us-core-6)."""

    family: str | None = None
    given: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(self.family is not None or bool(self.given), "a name needs a family or given")
        for part in (self.family, *self.given):
            _text(part, "a name part")


@dataclass(frozen=True, slots=True)
class Client:
    """The person in treatment (US Core Patient: at least one identifier and one name)."""

    id: Id
    identifiers: tuple[Identifier, ...]
    names: tuple[Name, ...]
    gender: Gender
    birth_date: date | None = None
    telecom: tuple[Contact, ...] = ()
    addresses: tuple[Address, ...] = ()
    language: str | None = None
    """The preferred language as a BCP 47 tag ("en", "es-MX")."""

    def __post_init__(self) -> None:
        _require(bool(self.identifiers), "a client needs at least one identifier")
        _require(bool(self.names), "a client needs at least one name")
        _require(
            self.language is None or _CODE.fullmatch(self.language) is not None, "bad language"
        )


class ProgramKind(StrEnum):
    """What kind of service a program offers (local code system program-kind)."""

    DETOX = "detox"
    RESIDENTIAL = "residential"
    OUTPATIENT = "outpatient"
    """Intensive outpatient and outpatient programs."""
    PRIMARY_CARE = "primary-care"
    SOBER_LIVING = "sober-living"
    COMMUNITY_SERVICE = "community-service"


@dataclass(frozen=True, slots=True)
class Program:
    """A treatment program or community service, and whether 42 CFR Part 2 covers its records."""

    id: Id
    name: str
    part2_program: bool
    kind: ProgramKind | None = None
    covered_entity: bool | None = None
    """Whether it is a HIPAA covered entity (None: not stated)."""
    active: bool = True
    identifiers: tuple[Identifier, ...] = ()
    telecom: tuple[Contact, ...] = ()
    addresses: tuple[Address, ...] = ()

    def __post_init__(self) -> None:
        _text(self.name, "a program name")


@dataclass(frozen=True, slots=True)
class CaseManager:
    """A practitioner working as a case manager for a program (a PractitionerRole)."""

    id: Id
    practitioner_id: Ref
    program_id: Ref
    active: bool = True
    telecom: tuple[Contact, ...] = ()


class CareSetting(StrEnum):
    """The settings case managers speak of; each groups one or more ASAM levels."""

    WITHDRAWAL_MANAGEMENT = "withdrawal-management"
    RESIDENTIAL = "residential"
    PARTIAL_HOSPITALIZATION = "partial-hospitalization"
    INTENSIVE_OUTPATIENT = "intensive-outpatient"
    OUTPATIENT = "outpatient"
    RECOVERY_SUPPORT = "recovery-support"


class LevelOfCare(StrEnum):
    """A level of care, coded by its ASAM Criteria (3rd ed.) level, or recovery-support.

    No HL7 or SNOMED code system names SUD levels of care, so these are codes of a local code
    system aligned to the ASAM levels (see `mappings.terminology.LEVEL_OF_CARE`).
    """

    WM_AMBULATORY = "1-WM"
    WM_AMBULATORY_EXTENDED = "2-WM"
    WM_RESIDENTIAL = "3.2-WM"
    WM_INPATIENT_MONITORED = "3.7-WM"
    WM_INPATIENT_MANAGED = "4-WM"
    OUTPATIENT = "1"
    INTENSIVE_OUTPATIENT = "2.1"
    PARTIAL_HOSPITALIZATION = "2.5"
    RESIDENTIAL_LOW_INTENSITY = "3.1"
    RESIDENTIAL_POPULATION_SPECIFIC = "3.3"
    RESIDENTIAL_HIGH_INTENSITY = "3.5"
    INPATIENT_MONITORED = "3.7"
    INPATIENT_MANAGED = "4"
    RECOVERY_SUPPORT = "recovery-support"
    """Aftercare and recovery support services, which have no ASAM level."""

    @property
    def setting(self) -> CareSetting:
        """The setting this level belongs to."""
        if self.value.endswith("-WM"):
            return CareSetting.WITHDRAWAL_MANAGEMENT
        return _SETTINGS[self.value]


_SETTINGS: Final = {
    "1": CareSetting.OUTPATIENT,
    "2.1": CareSetting.INTENSIVE_OUTPATIENT,
    "2.5": CareSetting.PARTIAL_HOSPITALIZATION,
    "3.1": CareSetting.RESIDENTIAL,
    "3.3": CareSetting.RESIDENTIAL,
    "3.5": CareSetting.RESIDENTIAL,
    "3.7": CareSetting.RESIDENTIAL,
    "4": CareSetting.RESIDENTIAL,
    "recovery-support": CareSetting.RECOVERY_SUPPORT,
}


class EpisodeStatus(StrEnum):
    """FHIR R4 episode-of-care-status."""

    PLANNED = "planned"
    WAITLIST = "waitlist"
    ACTIVE = "active"
    ONHOLD = "onhold"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"


@dataclass(frozen=True, slots=True)
class Episode:
    """A stay at one level of care in one program (an EpisodeOfCare)."""

    id: Id
    client_id: Ref
    program_id: Ref
    status: EpisodeStatus
    level: LevelOfCare | None = None
    period: Period | None = None
    care_manager_id: Ref | None = None
    """The case manager's Practitioner (R4 EpisodeOfCare.careManager refers to a Practitioner)."""
    referral_ids: tuple[Ref, ...] = ()
    identifiers: tuple[Identifier, ...] = ()


class GoalDomain(StrEnum):
    """The areas case managers work in (local code system goal-domain)."""

    HOUSING = "housing"
    EMPLOYMENT = "employment"
    JOB_PROTECTED_LEAVE = "job-protected-leave"
    """FMLA and state paid family and medical leave."""
    DISABILITY_INSURANCE = "disability-insurance"
    """Short- and long-term disability insurance claims."""
    TRANSPORTATION = "transportation"
    INSURANCE_BENEFITS = "insurance-benefits"
    """Coverage verification, prior authorizations, SNAP and other benefits."""
    LEGAL = "legal"
    """Probation, parole, drug court and other legal obligations."""
    CHILDCARE = "childcare"
    MEDICATION_CONTINUITY = "medication-continuity"
    """MOUD/MAT (buprenorphine, methadone, naltrexone): refills, prior authorizations, dosing."""
    MENTAL_HEALTH = "mental-health"
    FAMILY_INVOLVEMENT = "family-involvement"
    PRIMARY_CARE = "primary-care"

    @property
    def sdoh_category(self) -> "SdohCategory | None":
        """The SDOH category this domain stands for, where the SDOH Clinical Care IG has one.

        Childcare is material hardship, as the IG's PRAPARE child care example codes it; legal
        obligations are incarceration status, whose definition covers community supervision
        (probation, drug court). Medication continuity, mental health and primary care are
        clinical, with no SDOH category.
        """
        return _DOMAIN_SDOH.get(self.value)


class SdohCategory(StrEnum):
    """The SDOHCC ValueSet SDOH Category (SDOH Clinical Care IG 2.3), without "unspecified".

    "sdoh-category-unspecified" is how FHIR says "no category" where one is required; here that is
    an empty tuple of categories.
    """

    FOOD_INSECURITY = "food-insecurity"
    HOUSING_INSTABILITY = "housing-instability"
    HOMELESSNESS = "homelessness"
    INADEQUATE_HOUSING = "inadequate-housing"
    TRANSPORTATION_INSECURITY = "transportation-insecurity"
    FINANCIAL_INSECURITY = "financial-insecurity"
    MATERIAL_HARDSHIP = "material-hardship"
    EDUCATIONAL_ATTAINMENT = "educational-attainment"
    EMPLOYMENT_STATUS = "employment-status"
    VETERAN_STATUS = "veteran-status"
    STRESS = "stress"
    SOCIAL_CONNECTION = "social-connection"
    INTIMATE_PARTNER_VIOLENCE = "intimate-partner-violence"
    ELDER_ABUSE = "elder-abuse"
    PERSONAL_HEALTH_LITERACY = "personal-health-literacy"
    HEALTH_INSURANCE_COVERAGE_STATUS = "health-insurance-coverage-status"
    MEDICAL_COST_BURDEN = "medical-cost-burden"
    DIGITAL_LITERACY = "digital-literacy"
    DIGITAL_ACCESS = "digital-access"
    UTILITY_INSECURITY = "utility-insecurity"
    INCARCERATION_STATUS = "incarceration-status"
    LANGUAGE_ACCESS = "language-access"


_DOMAIN_SDOH: Final = {
    "housing": SdohCategory.HOUSING_INSTABILITY,
    "employment": SdohCategory.EMPLOYMENT_STATUS,
    "job-protected-leave": SdohCategory.EMPLOYMENT_STATUS,
    "disability-insurance": SdohCategory.FINANCIAL_INSECURITY,
    "transportation": SdohCategory.TRANSPORTATION_INSECURITY,
    "insurance-benefits": SdohCategory.HEALTH_INSURANCE_COVERAGE_STATUS,
    "legal": SdohCategory.INCARCERATION_STATUS,
    "childcare": SdohCategory.MATERIAL_HARDSHIP,
    "family-involvement": SdohCategory.SOCIAL_CONNECTION,
}


def _no_repeat_of_domain(domain: GoalDomain | None, extra: tuple[SdohCategory, ...]) -> None:
    _ids_unique(tuple(extra), "SDOH categories")
    _require(
        domain is None or domain.sdoh_category not in extra,
        "the domain's own SDOH category is implied, not extra",
    )


class GoalLifecycle(StrEnum):
    """FHIR R4 goal-status (Goal.lifecycleStatus)."""

    PROPOSED = "proposed"
    PLANNED = "planned"
    ACCEPTED = "accepted"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"
    REJECTED = "rejected"


class Achievement(StrEnum):
    """HL7 goal-achievement: progress toward the goal (Goal.achievementStatus)."""

    IN_PROGRESS = "in-progress"
    IMPROVING = "improving"
    WORSENING = "worsening"
    NO_CHANGE = "no-change"
    ACHIEVED = "achieved"
    SUSTAINING = "sustaining"
    NOT_ACHIEVED = "not-achieved"
    NO_PROGRESS = "no-progress"
    NOT_ATTAINABLE = "not-attainable"


class GoalPriority(StrEnum):
    """HL7 goal-priority."""

    HIGH = "high-priority"
    MEDIUM = "medium-priority"
    LOW = "low-priority"


TargetDetail: TypeAlias = Quantity | Concept | str | bool | int
"""What counts as reaching a target: an amount, a coded state, a text, yes/no, or a count."""


@dataclass(frozen=True, slots=True)
class Target:
    """One measurable target of a goal (Goal.target): what is measured, the aim, and when."""

    measure: Concept | None = None
    detail: TargetDetail | None = None
    due: date | None = None

    def __post_init__(self) -> None:
        _require(
            self.measure is not None or self.detail is not None or self.due is not None,
            "a target needs a measure, a detail or a due date",
        )
        if isinstance(self.detail, str):
            _text(self.detail, "a target detail")


@dataclass(frozen=True, slots=True)
class Goal:
    """A client's goal: what, in which domain, how it is measured, and how it is going."""

    id: Id
    client_id: Ref
    description: Concept
    lifecycle: GoalLifecycle
    domain: GoalDomain | None = None
    extra_sdoh_categories: tuple[SdohCategory, ...] = ()
    """SDOH categories besides the one the domain stands for (`mappings.terminology`)."""
    achievement: Achievement | None = None
    priority: GoalPriority | None = None
    start: date | None = None
    targets: tuple[Target, ...] = ()
    status_date: date | None = None
    expressed_by: Party | None = None
    barrier_ids: tuple[Ref, ...] = ()
    """The barriers (SDOH problems and health concerns) this goal addresses."""
    notes: tuple[str, ...] = ()
    """Progress notes, oldest first."""

    def __post_init__(self) -> None:
        _no_repeat_of_domain(self.domain, self.extra_sdoh_categories)
        for note in self.notes:
            _text(note, "a note")


class ConcernKind(StrEnum):
    """Whether a barrier is on the problem list or is a health concern (US Core category)."""

    PROBLEM = "problem-list-item"
    HEALTH_CONCERN = "health-concern"


class ClinicalStatus(StrEnum):
    """HL7 condition-clinical."""

    ACTIVE = "active"
    RECURRENCE = "recurrence"
    RELAPSE = "relapse"
    INACTIVE = "inactive"
    REMISSION = "remission"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Barrier:
    """A problem or health concern that stands between a client and a goal (a Condition)."""

    id: Id
    client_id: Ref
    code: Concept
    kind: ConcernKind
    domain: GoalDomain | None = None
    extra_sdoh_categories: tuple[SdohCategory, ...] = ()
    """SDOH categories besides the one the domain stands for (`mappings.terminology`)."""
    clinical_status: ClinicalStatus | None = None
    onset: When | None = None
    abatement: When | None = None
    recorded: When | None = None

    def __post_init__(self) -> None:
        _no_repeat_of_domain(self.domain, self.extra_sdoh_categories)
        _aware(self.recorded, "recorded")
        _aware(self.onset, "an onset")
        _aware(self.abatement, "an abatement")
        _require(
            self.abatement is None
            or self.clinical_status
            in (ClinicalStatus.INACTIVE, ClinicalStatus.REMISSION, ClinicalStatus.RESOLVED),
            "an abated barrier is inactive, in remission or resolved (con-4)",
        )


class ActionOwner(StrEnum):
    """Who owns an action: "I do it, we do it, you do it" (local code system action-owner)."""

    CASE_MANAGER = "case-manager"
    SHARED = "shared"
    CLIENT = "client"


class TaskStatus(StrEnum):
    """FHIR R4 task-status."""

    DRAFT = "draft"
    REQUESTED = "requested"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    READY = "ready"
    CANCELLED = "cancelled"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    FAILED = "failed"
    COMPLETED = "completed"
    ENTERED_IN_ERROR = "entered-in-error"


class TaskIntent(StrEnum):
    """FHIR R4 task-intent; a modifier, so it is kept as written."""

    UNKNOWN = "unknown"
    PROPOSAL = "proposal"
    PLAN = "plan"
    ORDER = "order"
    ORIGINAL_ORDER = "original-order"
    REFLEX_ORDER = "reflex-order"
    FILLER_ORDER = "filler-order"
    INSTANCE_ORDER = "instance-order"
    OPTION = "option"


@dataclass(frozen=True, slots=True)
class Action:
    """A step toward a goal, with an owner, a due date and a status (a Task)."""

    id: Id
    client_id: Ref
    title: str
    owner: ActionOwner
    status: TaskStatus
    intent: TaskIntent = TaskIntent.PLAN
    """A planned step of the care plan; other intents are kept from partners' Tasks."""
    details: str | None = None
    assignee: Party | None = None
    """Who carries it out: the case manager's PractitionerRole, the client, a practitioner."""
    requester: Party | None = None
    plan_id: Ref | None = None
    goal_ids: tuple[Ref, ...] = ()
    due: When | None = None
    authored_on: When | None = None
    execution: Period | None = None

    def __post_init__(self) -> None:
        _text(self.title, "an action title")
        _text(self.details, "action details")
        _aware(self.due, "a due date")
        _aware(self.authored_on, "authored on")


class RequestStatus(StrEnum):
    """FHIR R4 request-status, for care plans and referrals."""

    DRAFT = "draft"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    REVOKED = "revoked"
    COMPLETED = "completed"
    ENTERED_IN_ERROR = "entered-in-error"
    UNKNOWN = "unknown"


class PlanIntent(StrEnum):
    """FHIR R4 care-plan-intent."""

    PROPOSAL = "proposal"
    PLAN = "plan"
    ORDER = "order"
    OPTION = "option"


class ActivityKind(StrEnum):
    """What a care plan activity points at: an action (Task) or a referral (ServiceRequest)."""

    ACTION = "Task"
    REFERRAL = "ServiceRequest"


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity of a care plan: a reference to an action or a referral."""

    kind: ActivityKind
    ref: Ref


@dataclass(frozen=True, slots=True)
class CarePlan:
    """A client's case-management plan: goals, the barriers it addresses, its activities."""

    id: Id
    client_id: Ref
    status: RequestStatus
    intent: PlanIntent = PlanIntent.PLAN
    title: str | None = None
    description: str | None = None
    period: Period | None = None
    created: When | None = None
    author: Party | None = None
    goal_ids: tuple[Ref, ...] = ()
    barrier_ids: tuple[Ref, ...] = ()
    activities: tuple[Activity, ...] = ()

    def __post_init__(self) -> None:
        _text(self.title, "a plan title")
        _text(self.description, "a plan description")
        _aware(self.created, "created")


class Urgency(StrEnum):
    """FHIR R4 request-priority."""

    ROUTINE = "routine"
    URGENT = "urgent"
    ASAP = "asap"
    STAT = "stat"


@dataclass(frozen=True, slots=True)
class Referral:
    """A referral to a program or community service (a ServiceRequest, owned by the referrer).

    `service` is what is asked for (SNOMED CT "Patient referral" procedures and the like);
    `consents` are the consent directives that let it travel, `attachments` its documents.
    """

    id: Id
    client_id: Ref
    requester: Party
    status: RequestStatus
    service: Code
    authored_on: When
    performer_id: Ref | None = None
    """The program or service referred to (an Organization)."""
    urgency: Urgency = Urgency.ROUTINE
    requested_level: LevelOfCare | None = None
    sdoh_categories: tuple[SdohCategory, ...] = ()
    reason: str | None = None
    barrier_ids: tuple[Ref, ...] = ()
    goal_ids: tuple[Ref, ...] = ()
    occurrence: Period | When | None = None
    """When the service should happen: a planned date or a window."""
    placer_identifier: Identifier | None = None
    consents: tuple[ConsentRef, ...] = ()
    attachments: tuple[Ref, ...] = ()
    """DocumentReferences sent with the referral."""
    supporting_episode_id: Ref | None = None
    """The EpisodeOfCare the client is in now, when the referral moves them to another level."""
    replaces: tuple[Ref, ...] = ()
    """Earlier referrals this one re-routes."""

    def __post_init__(self) -> None:
        _aware(self.authored_on, "authored on")
        if not isinstance(self.occurrence, Period):
            _aware(self.occurrence, "an occurrence")
        _text(self.reason, "a reason")
        _ids_unique(tuple(self.sdoh_categories), "SDOH categories")


class BusinessStatus(StrEnum):
    """Where a referral stands in detail (local code system referral-business-status).

    Each code that has a BSeR Task Business Status is mapped to it in `mappings.terminology`.
    """

    CREATED = "created"
    UNDER_REVIEW = "under-review"
    AWAITING_INFORMATION = "awaiting-information"
    AWAITING_CONSENT = "awaiting-consent"
    AWAITING_AUTHORIZATION = "awaiting-authorization"
    WAITLISTED = "waitlisted"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    SCHEDULED = "scheduled"
    NO_SHOW = "no-show"
    APPOINTMENT_CANCELLED = "appointment-cancelled"
    INTERIM_UPDATE = "interim-update"
    ADMITTED = "admitted"
    CANCELLATION_REQUESTED = "cancellation-requested"
    CANCELLATION_CONFIRMED = "cancellation-confirmed"
    COMPLETED = "completed"
    TRANSFERRED_NEXT_LEVEL = "transferred-next-level"
    DISCHARGED_OTHER = "discharged-other"


class StatusReasonCode(StrEnum):
    """Why a referral was rejected, cancelled, held or failed (local referral-status-reason)."""

    AT_CAPACITY = "at-capacity"
    NOT_ELIGIBLE = "not-eligible"
    LEVEL_OF_CARE_MISMATCH = "level-of-care-mismatch"
    PAYER = "payer"
    UNABLE_TO_CONTACT = "unable-to-contact"
    OUT_OF_AREA = "out-of-area"
    MISSING_INFORMATION = "missing-information"
    PATIENT_DECLINED = "patient-declined"
    LEFT_AGAINST_ADVICE = "left-against-advice"
    LOST_TO_FOLLOW_UP = "lost-to-follow-up"
    NO_LONGER_NEEDED = "no-longer-needed"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class StatusReason:
    """A coded reason with the words that explain it (SDOHCC requires statusReason.text)."""

    code: StatusReasonCode | None
    text: str

    def __post_init__(self) -> None:
        _text(self.text, "a status reason")


TaskInputValue: TypeAlias = TypedRef | Code | bool
"""What a Task input or output carries: a resource, a code, or a yes/no."""


@dataclass(frozen=True, slots=True)
class TaskInput:
    """One input or output of a referral Task: its kind (`type`) and its value."""

    type: Code
    value: TaskInputValue


@dataclass(frozen=True, slots=True)
class ReferralTask:
    """The shared state of a referral between referrer and receiver (the fulfillment Task)."""

    id: Id
    referral_id: Ref
    client_id: Ref
    requester: Party
    status: TaskStatus
    authored_on: When
    owner: Party | None = None
    business_status: BusinessStatus | None = None
    status_reason: StatusReason | None = None
    urgency: Urgency | None = None
    last_modified: When | None = None
    response_deadline: When | None = None
    execution: Period | None = None
    identifiers: tuple[Identifier, ...] = ()
    inputs: tuple[TaskInput, ...] = ()
    outputs: tuple[TaskInput, ...] = ()

    def __post_init__(self) -> None:
        _aware(self.authored_on, "authored on")
        _aware(self.last_modified, "last modified")
        _aware(self.response_deadline, "a response deadline")


class TransitionItem(StrEnum):
    """A transfer checklist item of a handoff (local code system transition-item)."""

    RECORDS_SENT = "records-sent"
    MEDICATIONS_ON_HAND = "medications-on-hand"
    """Bridge supply or next MOUD dose arranged so that no dose is missed."""
    INTAKE_CONFIRMED = "intake-confirmed"
    AUTHORIZATION_OBTAINED = "authorization-obtained"
    CLIENT_INFORMED = "client-informed"


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One transfer checklist item and whether it is done."""

    item: TransitionItem
    done: bool


@dataclass(frozen=True, slots=True)
class Handoff:
    """A transition from one level of care to the next.

    It travels as a referral to the next level (`referral_id`, a ServiceRequest) and its
    fulfillment Task (`id`), whose inputs carry the transfer summary, the medication
    reconciliation, the checklist, whether transportation is arranged and the level left.
    """

    id: Id
    referral_id: Id
    client_id: Ref
    from_program_id: Ref
    from_level: LevelOfCare
    to_program_id: Ref
    to_level: LevelOfCare
    planned_date: date
    authored_on: When
    status: TaskStatus
    transfer_summary: Ref
    """The transfer summary DocumentReference (LOINC 18761-7)."""
    from_episode_id: Ref | None = None
    """The episode of care left, when it is one of ours: a handoff received from another
    organization (its Transfer Summary) names the episode only there."""
    consent: ConsentRef | None = None
    """The consent it is made under, when it is held here (a received handoff's is the
    sender's)."""
    business_status: BusinessStatus | None = None
    status_reason: StatusReason | None = None
    medication_reconciliation: Ref | None = None
    """The medication reconciliation DocumentReference, when done."""
    checklist: tuple[ChecklistItem, ...] = ()
    transportation_arranged: bool = False
    urgency: Urgency = Urgency.ROUTINE
    reason: str | None = None
    execution: Period | None = None
    """When the next level took the client in (start: in-progress) and the handoff ended (end:
    completed), as REFERRALS.md asks of those moves."""
    outputs: tuple[TaskInput, ...] = ()
    """What the handoff delivered (the intake Encounter, a discharge summary); a completed
    handoff has at least one."""

    def __post_init__(self) -> None:
        _aware(self.authored_on, "authored on")
        _text(self.reason, "a reason")
        _ids_unique(tuple(item.item for item in self.checklist), "checklist items")
