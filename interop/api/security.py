"""Authentication at the edge: partners by bearer token, staff by session cookie.

Every FHIR interaction names the SMART permission it needs (c, r, u, d or s); a token without
it gets 403, a request without a valid token 401 with a Bearer challenge (RFC 6750 §3). A
staff route without a session answers 401 with the `Cookie` challenge naming the sign-in form.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from interop.api.deps import BaseUrlDep
from interop.auth.requester import Requester
from interop.services.errors import Forbidden, ScopeInsufficient
from interop.services.staff import Role, StaffService, StaffSession
from interop.services.tokens import TokenService
from interop.services.write_policy import PartnerWriteGuard

SESSION_COOKIE = "interop_session"
CSRF_HEADER = "x-csrf-token"
STAFF_CHALLENGE = f'Cookie realm="staff", form-action="/auth/login", cookie-name="{SESSION_COOKIE}"'
"""The challenge of a 401 from a staff route (RFC 9110 §15.5.2: a 401 carries one). Staff
routes take the session cookie alone, never a bearer token, so the scheme is the `Cookie` one
of draft-broyer-http-cookie-auth: sign in with the form at `form-action`, which sets the
cookie named."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class StaffUnauthenticated(Exception):
    """No valid staff session: 401 problem detail."""


class CsrfRejected(Exception):
    """An unsafe request without the session's CSRF token: 403 problem detail."""


def _tokens(request: Request) -> TokenService:
    service: TokenService = request.app.state.tokens
    return service


def _staff(request: Request) -> StaffService:
    service: StaffService = request.app.state.staff
    return service


async def authenticated(request: Request, base: BaseUrlDep) -> Requester:
    """The partner behind the request's bearer token. On the event loop: its one indexed
    query (the partner's standing) costs less than a hop to the thread pool."""
    return _tokens(request).authenticate(
        request.headers.get("authorization"), base, datetime.now(UTC)
    )


RequesterDep = Annotated[Requester, Depends(authenticated)]


def requires(permission: str) -> Callable[[str, Requester], Awaitable[Requester]]:
    """A dependency: the requester, once its scopes allow `permission` on the path's type."""

    async def check(resource_type: str, requester: RequesterDep) -> Requester:
        if not requester.may(resource_type, permission):
            raise ScopeInsufficient(
                f"the access token has no scope allowing '{permission}' on {resource_type[:64]}"
            )
        return requester

    return check


async def subscription_reader(requester: RequesterDep) -> Requester:
    """`Subscription/{id}/$status` reads a Subscription: it needs 'r' on Subscription."""
    if not requester.may("Subscription", "r"):
        raise ScopeInsufficient("the access token has no scope allowing 'r' on Subscription")
    return requester


async def system_reader(requester: RequesterDep) -> Requester:
    """System-wide history spans every type: it needs `system/*.rs`."""
    if not requester.may("*", "s"):
        raise ScopeInsufficient("system history needs a system/*.s scope")
    return requester


def scope_authorizer(requester: Requester) -> Callable[[str, str], None]:
    """Per-entry checks for Bundles, whose entries name their own types and interactions."""

    def authorize(resource_type: str, permission: str) -> None:
        if not requester.may(resource_type, permission):
            raise ScopeInsufficient(
                f"the access token has no scope allowing '{permission}' on {resource_type[:64]}"
            )

    return authorize


def write_guard(requester: Requester, base_url: str) -> PartnerWriteGuard | None:
    """Outside partners are isolated; the operating program's own systems are not."""
    return None if requester.first_party else PartnerWriteGuard(requester, base_url)


def staff_session(request: Request) -> StaffSession:
    """The signed-in person; unsafe methods must echo the session's CSRF token."""
    token = request.cookies.get(SESSION_COOKIE)
    session = _staff(request).session(token, datetime.now(UTC)) if token else None
    if session is None:
        raise StaffUnauthenticated
    if (
        request.method not in _SAFE_METHODS
        and request.headers.get(CSRF_HEADER) != session.csrf_token
    ):
        raise CsrfRejected
    return session


def requires_role(*roles: Role) -> Callable[[StaffSession], Awaitable[StaffSession]]:
    async def check(session: Annotated[StaffSession, Depends(staff_session)]) -> StaffSession:
        if session.principal.role not in roles:
            raise Forbidden("this needs the role " + " or ".join(role.value for role in roles))
        return session

    return check


AdministratorDep = Annotated[StaffSession, Depends(requires_role(Role.ADMINISTRATOR))]
