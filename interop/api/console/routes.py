"""The staff console: server-rendered pages for compliance officers and case managers.

Pages are Jinja2 templates and plain HTML forms (no script, no build step, no CDN); routes are
thin: parse, call one service, render. None is in the OpenAPI document: the API is what
partners and tools use, the console is for people.
"""

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, RedirectResponse, Response

from interop.api.console import cases, review
from interop.api.console.pages import (
    HERE,
    AnyStaff,
    ConsoleRefused,
    ConsoleRoute,
    SignInNeeded,
    page,
    templates,
)
from interop.api.security import SESSION_COOKIE
from interop.services.staff import StaffService

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=303)


@router.get("/console")
def home(request: Request, session: AnyStaff) -> HTMLResponse:
    return page(request, session, "home.html")


@router.post("/console/sign-out")
def sign_out(request: Request, session: AnyStaff) -> Response:
    staff: StaffService = request.app.state.staff
    staff.logout(session.token)
    response = RedirectResponse("/auth/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _sign_in(_request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/auth/login", status_code=303)


def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleRefused)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": exc.status, "message": exc.message},
        status_code=exc.status,
    )


def install(app: FastAPI) -> None:
    """The console's pages, its stylesheet, and how it answers a missing session or role."""
    app.include_router(router)
    app.include_router(review.router)
    app.include_router(cases.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_exception_handler(SignInNeeded, _sign_in)
    app.add_exception_handler(ConsoleRefused, _refused)
