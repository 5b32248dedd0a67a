"""The append-only, keyed hash-chained disclosure log (42 CFR §2.24/§2.25; PART2.md A1, A3).

Each row's hash is an HMAC-SHA256, under a key held outside the database (settings), of the
previous row's hash and the row's own canonical content: changing, deleting or reordering any
row breaks every link after it, and whoever can write the database but does not hold the key
cannot recompute the chain after a change. `verify` walks the chain and names the first row
that does not hold. What the chain alone cannot show is a cut at its end or a rollback of the
whole database to an older copy: `checkpoint` signs the head (sequence and hash) for compliance
staff to keep elsewhere, and `verify` given those checkpoints finds each one's row still there
with the same hash. Appending locks the chain head, so concurrent writers (several API
processes on one PostgreSQL) add links strictly one after another.
"""

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import jwt
import orjson
from sqlalchemy import Connection, Select, bindparam, insert, select, update
from sqlmodel import Session, col

from interop.store.database import CHAIN_KEY_OPTION
from interop.store.tables import HEAD_TABLE, LOG_TABLE, ChainHeadRow, DisclosureLogRow

GENESIS = "0" * 64
_HEAD = "disclosures"
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One decision, as the gate hands it over."""

    recorded_at: datetime
    client_id: str
    requester: str
    patient: str | None
    purposes: tuple[str, ...]
    interaction: str
    decision: str
    rule: str
    consent: str | None
    provision: str | None
    resources: tuple[str, ...]
    labels: tuple[str, ...]
    part2: bool
    emergency: bool
    emergency_facts: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class ChainReport:
    intact: bool
    rows: int
    first_broken_seq: int | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain's head at one moment, as signed for compliance staff to keep."""

    seq: int
    hash: str
    at: datetime


class CheckpointInvalid(Exception):
    """A checkpoint that is not one this chain's key signed."""


def chain_key(session: Session) -> bytes:
    """The chain's key, which the engine carries from settings (store.database.make_engine):
    never stored in the database it protects."""
    return _key_of(session.connection())


def _key_of(connection: Connection) -> bytes:
    key = connection.get_execution_options().get(CHAIN_KEY_OPTION)
    if not isinstance(key, bytes) or not key:
        raise RuntimeError("the engine carries no audit chain key (make_engine(chain_key=...))")
    return key


def checkpoint(session: Session, now: datetime) -> str:
    """The head now, signed (a JWS, HS256 under the chain's key) for staff to keep elsewhere."""
    head = session.get(ChainHeadRow, _HEAD)
    seq, digest = (head.seq, head.hash) if head is not None else (0, GENESIS)
    claims = {"seq": seq, "hash": digest, "iat": int(now.timestamp()), "typ": "chain-head"}
    return jwt.encode(claims, chain_key(session), algorithm="HS256")


def read_checkpoint(session: Session, token: str) -> Checkpoint:
    """A checkpoint this chain's key signed; CheckpointInvalid for anything else."""
    try:
        claims = jwt.decode(token.strip(), chain_key(session), algorithms=["HS256"])
    except jwt.PyJWTError as error:
        raise CheckpointInvalid(f"not a checkpoint of this log ({error})") from None
    if claims.get("typ") != "chain-head" or not isinstance(claims.get("seq"), int):
        raise CheckpointInvalid("not a checkpoint of this log")
    at = datetime.fromtimestamp(int(claims.get("iat", 0)), UTC)
    return Checkpoint(claims["seq"], str(claims.get("hash")), at)


def append(transaction: Session | Connection, entries: Sequence[LogEntry]) -> None:
    """Add the entries as the next links of the chain, inside the caller's transaction."""
    if not entries:
        return
    # Core on the transaction's connection, not the ORM: every read of patient data pays this.
    connection = transaction.connection() if isinstance(transaction, Session) else transaction
    key = _key_of(connection)
    seq, previous = _locked_head(connection)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        row = _row(seq, entry, previous, key)
        rows.append(row)
        previous = row["hash"]
    connection.execute(insert(LOG_TABLE), rows)
    connection.execute(_MOVE_HEAD, {"seq": seq, "hash": previous})


def verify(session: Session, checkpoints: Sequence[Checkpoint] = ()) -> ChainReport:
    """Walk the chain from the first row, naming the first that does not hold; then find each
    checkpoint's row still there, unchanged (a cut at the end, or a rollback, shows here)."""
    report = _walk(session, chain_key(session))
    if not report.intact:
        return report
    for kept in checkpoints:
        row = session.get(DisclosureLogRow, kept.seq)
        when = f"{kept.at:%Y-%m-%d %H:%M:%S} UTC"
        if row is None:
            problem = f"row {kept.seq} of the checkpoint of {when} is gone: cut or rolled back"
            return ChainReport(False, report.rows, kept.seq, problem)
        if not hmac.compare_digest(row.hash, kept.hash):
            problem = f"row {kept.seq} is not the one the checkpoint of {when} signed"
            return ChainReport(False, report.rows, kept.seq, problem)
    return report


def _walk(session: Session, key: bytes) -> ChainReport:
    expected_seq, previous, count = 1, GENESIS, 0
    for row in _rows_in_order(session):
        count += 1
        if isinstance(row, Unreadable):
            return ChainReport(False, count, row.seq, "the row cannot be read: a value was changed")
        if row.seq != expected_seq:
            return ChainReport(False, count, expected_seq, f"row {expected_seq} is missing")
        if row.prev_hash != previous:
            return ChainReport(False, count, row.seq, "the link to the previous row is broken")
        if not hmac.compare_digest(_digest(row.prev_hash, _content(row), key), row.hash):
            return ChainReport(False, count, row.seq, "the row's content was changed")
        previous, expected_seq = row.hash, expected_seq + 1
    head = session.get(ChainHeadRow, _HEAD)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != previous):
        return ChainReport(False, count, expected_seq, "rows after the last one were removed")
    return ChainReport(True, count)


_HEAD_NOW = (
    select(HEAD_TABLE.c.seq, HEAD_TABLE.c.hash).where(HEAD_TABLE.c.name == _HEAD).with_for_update()
)
_MOVE_HEAD = (
    update(HEAD_TABLE)
    .where(HEAD_TABLE.c.name == _HEAD)
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)


def _locked_head(connection: Connection) -> tuple[int, str]:
    """The head's (seq, hash), locked for this transaction (written at the migration; made if
    missing)."""
    found = connection.execute(_HEAD_NOW).first()
    if found is None:
        connection.execute(insert(HEAD_TABLE).values(name=_HEAD, seq=0, hash=GENESIS))
        return 0, GENESIS
    return int(found.seq), str(found.hash)


DECISIONS: Final = frozenset({"permit", "deny", "reviewed"})
"""Every decision the log writes: the gate's two, and a compliance officer's sign-off."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A row whose stored values are none the log writes (a timestamp edited into text that
    is no time, in SQLite; emergency facts that are no JSON object of texts; a decision the
    log never makes), or, in a listing (`read_rows`), whose content its hash was not made of:
    tampering, reported as such. Only its place in the chain is kept: no
    value of an altered row can be trusted, so none is shown."""

    seq: int


def read_rows(session: Session, statement: Select[Any]) -> list[DisclosureLogRow | Unreadable]:
    """The rows a `select(DisclosureLogRow)` finds, in its order, each one that cannot be read
    in its place as Unreadable: one altered row must not hide the others from compliance
    staff. A row that reads well but no longer matches its own link's HMAC was altered too (a
    recipient or a decision changed): it is listed as unreadable, never as what it now says."""
    key = chain_key(session)
    return [_authentic(row, key) for row in _loaded(session, statement)]


def _loaded(session: Session, statement: Select[Any]) -> list[DisclosureLogRow | Unreadable]:
    """The rows as stored, those whose values the log never writes as Unreadable: what the
    chain's walk checks link by link (and the re-keying, under the older hash)."""
    try:
        rows: list[DisclosureLogRow] = list(session.execute(statement).scalars())
    except (ValueError, TypeError):
        keys = statement.with_only_columns(col(DisclosureLogRow.seq))
        return [_one(session, seq) for seq in session.execute(keys).scalars()]
    return [_checked(row) for row in rows]


def _authentic(row: DisclosureLogRow | Unreadable, key: bytes) -> DisclosureLogRow | Unreadable:
    """The row, or Unreadable when its content is not what its hash was made of."""
    if isinstance(row, Unreadable):
        return row
    if hmac.compare_digest(_digest(row.prev_hash, _content(row), key), row.hash):
        return row
    return Unreadable(row.seq)


def emergency_facts(row: DisclosureLogRow) -> dict[str, str] | None:
    """The §2.51 facts the row keeps, as the log writes them (a JSON object of texts); None
    when it keeps none, or keeps anything else."""
    if row.emergency_facts is None:
        return None
    try:
        facts = orjson.loads(row.emergency_facts)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(facts, dict) or not all(isinstance(v, str) for v in facts.values()):
        return None
    return facts


def _one(session: Session, seq: int) -> DisclosureLogRow | Unreadable:
    try:
        row = session.execute(
            select(DisclosureLogRow).where(col(DisclosureLogRow.seq) == seq)
        ).scalar_one()
    except (ValueError, TypeError):
        return Unreadable(seq)
    return _checked(row)


def _checked(row: DisclosureLogRow) -> DisclosureLogRow | Unreadable:
    """The row, or Unreadable when a value the views rely on is none the log writes."""
    if row.decision not in DECISIONS:
        return Unreadable(row.seq)
    if row.emergency_facts is not None and emergency_facts(row) is None:
        return Unreadable(row.seq)
    return row


def _rows_in_order(session: Session) -> Iterator[DisclosureLogRow | Unreadable]:
    last = 0
    while True:
        statement = (
            select(DisclosureLogRow)
            .where(col(DisclosureLogRow.seq) > last)
            .order_by(col(DisclosureLogRow.seq))
            .limit(_BATCH)
        )
        rows = _loaded(session, statement)
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


_CHAINED: Final = (
    "seq", "recorded_at", "client_id", "requester", "patient", "purposes", "interaction",
    "decision", "rule", "consent", "provision", "resources", "labels", "part2", "emergency",
    "emergency_facts",
)  # fmt: skip
"""The fields a row's hash covers: every one but the links themselves."""


def _row(seq: int, entry: LogEntry, previous: str, key: bytes) -> dict[str, Any]:
    """The row's column values, plain (every read of patient data pays for this)."""
    values: dict[str, Any] = {
        "seq": seq,
        "recorded_at": entry.recorded_at,
        "client_id": entry.client_id,
        "requester": entry.requester,
        "patient": entry.patient,
        "purposes": " ".join(entry.purposes),
        "interaction": entry.interaction,
        "decision": entry.decision,
        "rule": entry.rule,
        "consent": entry.consent,
        "provision": entry.provision,
        "resources": " ".join(entry.resources),
        "labels": " ".join(entry.labels),
        "part2": entry.part2,
        "emergency": entry.emergency,
        "emergency_facts": orjson.dumps(entry.emergency_facts).decode()
        if entry.emergency_facts
        else None,
        "prev_hash": previous,
    }
    values["hash"] = _digest(previous, _canonical(values), key)
    return values


def _content(row: DisclosureLogRow) -> bytes:
    return _canonical({name: getattr(row, name) for name in _CHAINED})


def _canonical(values: dict[str, Any]) -> bytes:
    """The chained fields in a fixed order and form, independent of the database's."""
    fields = {name: values[name] for name in _CHAINED}
    recorded_at: datetime = fields["recorded_at"]
    fields["recorded_at"] = recorded_at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def rechain(session: Session, key: bytes) -> int:
    """Recompute every link under `key`, from the first row: done once, by the migration that
    introduced the key, over rows chained before with plain SHA-256 (after checking them)."""
    previous, count = GENESIS, 0
    for row in _rows_in_order(session):
        if isinstance(row, Unreadable):
            raise ValueError(f"the disclosure log is broken at row {row.seq}; not re-keyed")
        if hashlib.sha256(row.prev_hash.encode() + _content(row)).hexdigest() != row.hash:
            raise ValueError(f"the disclosure log is broken at row {row.seq}; not re-keyed")
        row.prev_hash = previous
        row.hash = _digest(previous, _content(row), key)
        previous, count = row.hash, count + 1
        session.add(row)
    head = session.get(ChainHeadRow, _HEAD)
    if head is not None:
        head.hash = previous
        session.add(head)
    session.flush()
    return count


def _digest(previous: str, content: bytes, key: bytes) -> str:
    return hmac.new(key, previous.encode() + content, hashlib.sha256).hexdigest()
