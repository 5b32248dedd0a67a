"""The tables holding every FHIR resource, every version of it, and its search index.

`resource` keeps the current version of each resource (deleted ones too, as tombstones, so
that a read can answer 410 Gone); `resource_version` keeps every version ever written, which
is what history and vread serve; `search_index` keeps the values the search parameters of
interop.store.search_params extract, one row per value.

Every version records its origin, the organization on whose behalf it was written (its
custodian, PART2.md P1), set by the service from who is asking and never read from the body;
`custodians` lists, in order of first contribution, every organization that wrote any version
up to this one, since a shared record (a referral's Task) carries what each of them wrote.
"""

from datetime import datetime
from typing import Final

from sqlalchemy import Column, Index, LargeBinary, Table, UniqueConstraint
from sqlmodel import Field, SQLModel

OPERATOR_ORIGIN: Final = "Organization/operator"
"""The origin of what the operator itself wrote without naming a program (seeded or migrated
data, an administrator with no program): a custodian of unknown standing, which the gate treats
as a Part 2 program unless an Organization with this id says otherwise."""


class ResourceRow(SQLModel, table=True):
    """The current version of one resource, stored as the JSON bytes served on reads."""

    __tablename__ = "resource"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", name="uq_resource_type_id"),
        Index("ix_resource_type_updated", "resource_type", "last_updated"),
        Index("ix_resource_origin", "resource_type", "origin"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    version_id: int
    last_updated: datetime
    deleted: bool = False
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    origin: str = Field(default=OPERATOR_ORIGIN, max_length=200)
    custodians: str = Field(default=OPERATOR_ORIGIN, max_length=4000)
    patient: str | None = Field(default=None, max_length=200)
    """Whose record the current version is, as the gate reads it (`Patient/{id}`, or '' for
    none), recorded when it is written; NULL for rows stored before it was recorded."""


class ResourceVersionRow(SQLModel, table=True):
    """One version of one resource; a delete is a version without content."""

    __tablename__ = "resource_version"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", "version_id", name="uq_resource_version"),
        Index("ix_resource_version_updated", "resource_type", "last_updated"),
        Index("ix_resource_version_type_pk", "resource_type", "pk"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    version_id: int
    last_updated: datetime = Field(index=True)
    method: str = Field(max_length=8)
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    origin: str = Field(default=OPERATOR_ORIGIN, max_length=200)
    custodians: str = Field(default=OPERATOR_ORIGIN, max_length=4000)


class SearchIndexRow(SQLModel, table=True):
    """One value of one search parameter of one current resource.

    Columns by parameter type: token -> system, value; string -> value (as written), norm
    (case- and accent-folded); reference -> system (target type), value (target id), norm (the
    absolute URL when the reference was absolute); date -> lo, hi (the UTC range it covers).
    """

    __tablename__ = "search_index"
    __table_args__ = (
        Index("ix_search_value_key", "resource_type", "param", "value", "resource_pk"),
        Index("ix_search_norm", "resource_type", "param", "norm"),
        Index("ix_search_date", "resource_type", "param", "lo", "hi"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    resource_pk: int = Field(foreign_key="resource.pk", index=True, ondelete="CASCADE")
    resource_type: str = Field(max_length=64)
    param: str = Field(max_length=64)
    system: str | None = Field(default=None, max_length=1024)
    value: str | None = Field(default=None, max_length=2048)
    norm: str | None = Field(default=None, max_length=2048)
    lo: datetime | None = None
    hi: datetime | None = None


class PartnerRow(SQLModel, table=True):
    """A registered partner system: its OAuth client, keys, grants and what it is in law."""

    __tablename__ = "partner"

    pk: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    organization_id: str = Field(max_length=64, index=True)
    scopes: str = Field(max_length=2000)
    jwks: str | None = Field(default=None, max_length=100_000)
    jwks_url: str | None = Field(default=None, max_length=2000)
    part2_program: bool = False
    covered_entity: bool = False
    first_party: bool = False
    enabled: bool = True
    created_at: datetime
    channel: str = Field(default="none", max_length=16)
    channel_address: str | None = Field(default=None, max_length=2000)
    channel_client_id: str | None = Field(default=None, max_length=200)
    channel_token_url: str | None = Field(default=None, max_length=2000)
    poll_watermark: str | None = Field(default=None, max_length=40)
    notify_secret_hash: str | None = Field(default=None, max_length=64)
    poll_requested_at: datetime | None = None
    credentials_since: datetime | None = None
    """When its keys were last rotated (to the millisecond): tokens issued before are void."""


class UsedAssertionRow(SQLModel, table=True):
    """A client assertion's jti, kept until the assertion expires, so it is never accepted twice."""

    __tablename__ = "used_assertion"
    __table_args__ = (UniqueConstraint("client_id", "jti", name="uq_used_assertion"),)

    pk: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64)
    jti: str = Field(max_length=256)
    expires_at: datetime = Field(index=True)


class StaffUserRow(SQLModel, table=True):
    """A person: case manager, compliance officer or administrator."""

    __tablename__ = "staff_user"

    pk: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=200, unique=True)
    password_hash: str | None = Field(default=None, max_length=512)
    role: str = Field(max_length=32)
    programs: str = Field(default="", max_length=4000)
    enabled: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime


class StaffSessionRow(SQLModel, table=True):
    """A signed-in browser session; only the hash of its cookie value is stored."""

    __tablename__ = "staff_session"

    pk: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    csrf_token: str = Field(max_length=64)
    user_pk: int = Field(foreign_key="staff_user.pk", index=True, ondelete="CASCADE")
    expires_at: datetime


class DisclosureLogRow(SQLModel, table=True):
    """One disclosure decision (42 CFR §2.24/§2.25, PART2.md A1), chained to the one before.

    `hash` is an HMAC-SHA256 (interop.audit.log) over `prev_hash` and the row's canonical
    content, so an edited, deleted or reordered row breaks the chain; `seq` is contiguous from
    1. Rows are found by `seq`, never by hash, so the hash has no index.
    """

    __tablename__ = "disclosure_log"

    seq: int = Field(primary_key=True)
    recorded_at: datetime = Field(index=True)
    client_id: str = Field(max_length=64)
    requester: str = Field(max_length=200, index=True)
    patient: str | None = Field(default=None, max_length=200, index=True)
    purposes: str = Field(default="", max_length=500)
    interaction: str = Field(max_length=32)
    decision: str = Field(max_length=8)
    rule: str = Field(max_length=16)
    consent: str | None = Field(default=None, max_length=200, index=True)
    provision: str | None = Field(default=None, max_length=200)
    resources: str = Field(max_length=100_000)
    labels: str = Field(default="", max_length=1000)
    part2: bool
    emergency: bool = False
    emergency_facts: str | None = Field(default=None, max_length=4000)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ChainHeadRow(SQLModel, table=True):
    """The last link of the disclosure chain; writers lock it so links are added one at a time."""

    __tablename__ = "chain_head"

    name: str = Field(primary_key=True, max_length=32)
    seq: int
    hash: str = Field(max_length=64)


class InboundMessageRow(SQLModel, table=True):
    """Every HL7 v2 message received, kept as received: nothing is silently dropped, and what
    could not be read or processed waits here (status "held") for staff to inspect."""

    __tablename__ = "inbound_message"

    pk: int | None = Field(default=None, primary_key=True)
    received_at: datetime = Field(index=True)
    channel: str = Field(max_length=16)
    sender: str = Field(default="", max_length=400)
    control_id: str = Field(default="", max_length=200)
    message_type: str = Field(default="", max_length=40)
    ack_code: str = Field(max_length=2)
    status: str = Field(max_length=16, index=True)
    problems: str = Field(default="", max_length=100_000)
    resources: str = Field(default="", max_length=10_000)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class OutboxRow(SQLModel, table=True):
    """One change that must reach one partner, written in the transaction of the change itself
    (ARCHITECTURE.md rule 5) and worked by the dispatcher until delivered or given up.

    `state` is transport state only (queued, sending, sent, acknowledged, failed, withheld),
    never the Task's workflow state; `error` and `receipt` hold short texts of ours and the
    partner's reference, never patient data. A row is the version of the resource that changed:
    what is sent is decided by the disclosure gate when it is sent.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_subject", "partner_client_id", "resource_type", "resource_id"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    created_at: datetime
    partner_client_id: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    event: str = Field(max_length=32)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    version_id: int
    state: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: datetime
    lease_until: datetime | None = None
    error: str = Field(default="", max_length=1000)
    receipt: str = Field(default="", max_length=1000)
    finished_at: datetime | None = None
    subscription_id: str | None = Field(default=None, max_length=64)


RESOURCE_TABLE: Final[Table] = ResourceRow.__table__  # type: ignore[attr-defined]
VERSION_TABLE: Final[Table] = ResourceVersionRow.__table__  # type: ignore[attr-defined]
INDEX_TABLE: Final[Table] = SearchIndexRow.__table__  # type: ignore[attr-defined]
LOG_TABLE: Final[Table] = DisclosureLogRow.__table__  # type: ignore[attr-defined]
HEAD_TABLE: Final[Table] = ChainHeadRow.__table__  # type: ignore[attr-defined]
OUTBOX_TABLE: Final[Table] = OutboxRow.__table__  # type: ignore[attr-defined]
"""Typed handles on the tables, for SQL expressions (SQLModel types the fields as values)."""


class ConsentFormRow(SQLModel, table=True):
    """A consent form compliance staff approved once, with the §2.31 statements it contains
    (PART2.md C9): consents signed on it have those elements without attesting them each.

    `form` is how consents name it: a `policy.uri` (which may be the canonical|version of the
    Questionnaire the form comes from), the signed form's attachment URL, or the literal
    `sourceReference` (a DocumentReference); `statements` the codes of mappings.consent
    (right-to-revoke, redisclosure-risk, refusal-consequences), space-separated.
    """

    __tablename__ = "consent_form"

    pk: int | None = Field(default=None, primary_key=True)
    form: str = Field(max_length=1024, unique=True)
    title: str = Field(default="", max_length=400)
    statements: str = Field(default="", max_length=400)
    approved_by: str = Field(max_length=200)
    approved_at: datetime


FORM_TABLE: Final[Table] = ConsentFormRow.__table__  # type: ignore[attr-defined]
PARTNER_TABLE: Final[Table] = PartnerRow.__table__  # type: ignore[attr-defined]
STAFF_TABLE: Final[Table] = StaffUserRow.__table__  # type: ignore[attr-defined]


class ChangeCounterRow(SQLModel, table=True):
    """How many transactions so far wrote a kind of record the disclosure gate keeps facts
    from between requests (interop.store.markers): bumped as the writing transaction commits,
    so that it moves in commit order, which a sequence's keys do not on PostgreSQL."""

    __tablename__ = "change_counter"

    name: str = Field(primary_key=True, max_length=64)
    n: int = 0


COUNTER_TABLE: Final[Table] = ChangeCounterRow.__table__  # type: ignore[attr-defined]


class ExportJobRow(SQLModel, table=True):
    """A Bulk Data $export job (Bulk Data Access IG v2.0.0): what was asked, by whom, and how
    far its worker has got, so that a job outlives the process that started it.

    `requester` holds what the disclosure gate needs to decide as the partner that asked (its
    client, organization, scopes, purposes and emergency facts from the kick-off's token), so
    that every resource is judged as that partner when the job runs; `cursor` is the primary
    key of the last resource examined in the type at `type_index`, from which a resumed job
    goes on. `released` counts only what the gate released. `error` is a text of ours, never
    patient data.
    """

    __tablename__ = "export_job"
    __table_args__ = (Index("ix_export_job_due", "state", "lease_until"),)

    pk: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=64, unique=True)
    client_id: str = Field(max_length=64, index=True)
    requester: str = Field(max_length=8000)
    level: str = Field(max_length=16)
    group_id: str | None = Field(default=None, max_length=64)
    request_url: str = Field(max_length=8000)
    types: str = Field(max_length=4000)
    since: datetime | None = None
    type_filters: str = Field(default="", max_length=100_000)
    state: str = Field(max_length=16)
    created_at: datetime
    transaction_time: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    lease_until: datetime | None = None
    type_index: int = 0
    cursor: int = 0
    released: int = 0
    error: str = Field(default="", max_length=1000)


class ExportChunkRow(SQLModel, table=True):
    """A run of NDJSON lines of one output file of an export job, written with the job's
    progress in one transaction: a file is its chunks in key order, and a job resumed after a
    crash neither loses nor repeats a line."""

    __tablename__ = "export_chunk"
    __table_args__ = (Index("ix_export_chunk_file", "job_pk", "resource_type", "pk"),)

    pk: int | None = Field(default=None, primary_key=True)
    job_pk: int = Field(foreign_key="export_job.pk", ondelete="CASCADE")
    resource_type: str = Field(max_length=64)
    lines: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


EXPORT_JOB_TABLE: Final[Table] = ExportJobRow.__table__  # type: ignore[attr-defined]
EXPORT_CHUNK_TABLE: Final[Table] = ExportChunkRow.__table__  # type: ignore[attr-defined]
