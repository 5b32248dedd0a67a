"""What every console page shares: the templates, the session and role checks with CSRF on
every form, and how a page is rendered or a form answered.

A page needs a staff session (without one the browser is sent to the sign-in form) and a role
(a wrong role: 403 as an HTML page); every form carries the session's CSRF token as a hidden
field, and a POST without it is refused. Whatever a page is refused for (a role, an address
naming nothing, a filter that is no filter) is said on the console's error page, never in the
API's problem detail, which a browser shows as raw JSON.
"""

import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse, RedirectResponse, Response

from interop.api.security import SESSION_COOKIE
from interop.services.staff import Role, StaffService, StaffSession

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
_SAFE_METHODS = frozenset({"GET", "HEAD"})
ID = r"^[A-Za-z0-9\-.]{1,64}$"


class SignInNeeded(Exception):
    """No valid staff session: the browser goes to the sign-in form."""


class ConsoleRefused(Exception):
    """A page or form the person may not have: shown as an HTML page with the status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConsoleRoute(APIRoute):
    """A console page whose request FastAPI cannot read answers with the error page: an
    address naming nothing (`/console/disclosures/abc`, a number past any row) is a page that
    is not there (404); a missing or malformed field of a form or filter, a 400 naming it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as invalid:
                raise _unreadable(invalid) from None

        return answered


def _unreadable(invalid: RequestValidationError) -> ConsoleRefused:
    """The refusal of a request FastAPI could not read, in words a person can act on."""
    problems = invalid.errors()
    if any(problem["loc"][:1] == ("path",) for problem in problems):
        return ConsoleRefused(404, "There is no such page.")
    said = "; ".join(f"{problem['loc'][-1]} ({problem['msg'].lower()})" for problem in problems)
    return ConsoleRefused(400, f"Check the form: {said}.")


async def console_session(request: Request) -> StaffSession:
    """The signed-in person; a POST must carry the session's CSRF token as a form field."""
    staff: StaffService = request.app.state.staff
    token = request.cookies.get(SESSION_COOKIE)
    session = staff.session(token, datetime.now(UTC)) if token else None
    if session is None:
        raise SignInNeeded
    if request.method not in _SAFE_METHODS:
        sent = (await request.form()).get("csrf_token")
        if not isinstance(sent, str) or not secrets.compare_digest(sent, session.csrf_token):
            raise ConsoleRefused(
                403, "This form's security token is missing or stale: reload the page and retry."
            )
    return session


def _role(*roles: Role) -> Any:
    def check(session: Annotated[StaffSession, Depends(console_session)]) -> StaffSession:
        if session.principal.role not in roles:
            names = " or ".join(role.value for role in roles)
            raise ConsoleRefused(403, f"This page is for the role {names}.")
        return session

    return Depends(check)


AnyStaff = Annotated[StaffSession, Depends(console_session)]
Reviewer = Annotated[StaffSession, _role(Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR)]
CaseManager = Annotated[StaffSession, _role(Role.CASE_MANAGER, Role.ADMINISTRATOR)]


def page(
    request: Request, session: StaffSession, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {"session": session, "role": session.principal.role.value, **context},
        status_code=status,
    )


def back(path: str, notice: str = "") -> RedirectResponse:
    """Post/redirect/get: the page the form was on, with what happened."""
    query = f"?{urlencode({'notice': notice})}" if notice else ""
    return RedirectResponse(path + query, status_code=303)
