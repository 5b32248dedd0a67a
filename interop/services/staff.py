"""Staff accounts: argon2 password hashes, sessions, lockout after repeated failures, roles."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select
from sqlmodel import col

from interop.services.errors import InvalidRequest, ResourceNotFound
from interop.store import markers
from interop.store.database import unit_of_work
from interop.store.tables import StaffSessionRow, StaffUserRow

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
MIN_PASSWORD_LENGTH = 12


class Role(StrEnum):
    CASE_MANAGER = "case-manager"
    COMPLIANCE_OFFICER = "compliance-officer"
    ADMINISTRATOR = "administrator"


class LoginFailed(Exception):
    """Wrong name, wrong password, disabled or locked: deliberately one message for all."""


@dataclass(frozen=True, slots=True)
class StaffPrincipal:
    username: str
    role: Role
    programs: tuple[str, ...]  # Organization ids of the programs a case manager works for


@dataclass(frozen=True, slots=True)
class StaffSession:
    principal: StaffPrincipal
    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int
    lockout: timedelta
    session_lifetime: timedelta


class StaffService:
    def __init__(self, engine: Engine, policy: LoginPolicy) -> None:
        self._engine = engine
        self._policy = policy

    def add(
        self,
        username: str,
        password: str | None,
        role: Role,
        programs: tuple[str, ...],
        now: datetime,
    ) -> StaffPrincipal:
        """A new account; one with no password signs in only through the OpenID Connect
        provider, or once a password is set. Its programs record consents for themselves."""
        if password is not None:
            _check_password(password)
        with unit_of_work(self._engine) as session:
            if _user(session, username) is not None:
                raise InvalidRequest(f"a user named {username[:60]!r} already exists")
            row = StaffUserRow(
                username=username,
                password_hash=_HASHER.hash(password) if password is not None else None,
                role=role.value,
                programs=" ".join(programs),
                created_at=now,
            )
            session.add(row)
            markers.note_write(session, markers.CONSENT_HOLDERS)
            return _principal(row)

    def exists(self, username: str) -> bool:
        with unit_of_work(self._engine, writes=False) as session:
            return _user(session, username) is not None

    def set_enabled(self, username: str, enabled: bool) -> None:
        with unit_of_work(self._engine) as session:
            row = _existing(session, username)
            row.enabled = enabled
            session.add(row)
            markers.note_write(session, markers.CONSENT_HOLDERS)
            if not enabled:
                session.execute(
                    delete(StaffSessionRow).where(col(StaffSessionRow.user_pk) == row.pk)
                )

    def reset_password(self, username: str, password: str) -> None:
        """New password; ends the user's sessions and lifts a lockout."""
        _check_password(password)
        with unit_of_work(self._engine) as session:
            row = _existing(session, username)
            row.password_hash = _HASHER.hash(password)
            row.failed_logins = 0
            row.locked_until = None
            session.add(row)
            session.execute(delete(StaffSessionRow).where(col(StaffSessionRow.user_pk) == row.pk))

    def login(self, username: str, password: str, now: datetime) -> StaffSession:
        """A new session, or LoginFailed; the time taken does not tell whether the user exists."""
        with unit_of_work(self._engine) as session:
            row = _user(session, username)
            if row is None or row.password_hash is None:
                _verify(_DUMMY_HASH, password)
                raise LoginFailed
            locked = row.locked_until is not None and row.locked_until > now
            if not _verify(row.password_hash, password) or locked or not row.enabled:
                if not locked:
                    self._count_failure(row, now)
                session.add(row)
                failed = True
            else:
                failed = False
        if failed:
            raise LoginFailed
        return self._open_session(row, now)

    def login_external(self, username: str, now: datetime) -> StaffSession:
        """A session for a person an OpenID Connect provider vouched for; the account must exist."""
        with unit_of_work(self._engine, writes=False) as session:
            row = _user(session, username)
        if row is None or not row.enabled:
            raise LoginFailed
        return self._open_session(row, now)

    def session(self, token: str, now: datetime) -> StaffSession | None:
        with unit_of_work(self._engine, writes=False) as session:
            statement = (
                select(StaffSessionRow, StaffUserRow)
                .join(StaffUserRow)
                .where(col(StaffSessionRow.token_hash) == _digest(token))
            )
            found = session.execute(statement).first()
            if found is None:
                return None
            stored, user = found
            if stored.expires_at <= now or not user.enabled:
                return None
            return StaffSession(_principal(user), token, stored.csrf_token, stored.expires_at)

    def logout(self, token: str) -> None:
        with unit_of_work(self._engine) as session:
            session.execute(
                delete(StaffSessionRow).where(col(StaffSessionRow.token_hash) == _digest(token))
            )

    def _count_failure(self, row: StaffUserRow, now: datetime) -> None:
        row.failed_logins += 1
        if row.failed_logins >= self._policy.max_failures:
            row.locked_until = now + self._policy.lockout
            row.failed_logins = 0

    def _open_session(self, row: StaffUserRow, now: datetime) -> StaffSession:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + self._policy.session_lifetime
        with unit_of_work(self._engine) as session:
            user = _existing(session, row.username)
            user.failed_logins = 0
            session.add(user)
            assert user.pk is not None
            session.add(
                StaffSessionRow(
                    token_hash=_digest(token), csrf_token=csrf, user_pk=user.pk, expires_at=expires
                )
            )
        return StaffSession(_principal(row), token, csrf, expires)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(session: object, username: str) -> StaffUserRow | None:
    statement = select(StaffUserRow).where(col(StaffUserRow.username) == username)
    row: StaffUserRow | None = session.execute(statement).scalars().first()  # type: ignore[attr-defined]
    return row


def _existing(session: object, username: str) -> StaffUserRow:
    row = _user(session, username)
    if row is None:
        raise ResourceNotFound(f"no user named {username[:60]!r}")
    return row


def _principal(row: StaffUserRow) -> StaffPrincipal:
    return StaffPrincipal(row.username, Role(row.role), tuple(row.programs.split()))
