"""create_app(settings) -> FastAPI: routers, error handlers, and the services they call."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version

import httpx
from anyio import to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from interop import logs
from interop.api import outcomes
from interop.api.admin.deliveries import router as deliveries_router
from interop.api.admin.forms import router as forms_router
from interop.api.admin.routes import router as admin_router
from interop.api.audit.routes import router as audit_router
from interop.api.auth.routes import router as auth_router
from interop.api.caching import NoStore
from interop.api.cases.routes import router as cases_router
from interop.api.cds.routes import router as cds_router
from interop.api.console import routes as console
from interop.api.console.browser import BrowserFhirView
from interop.api.fhir.bulk import router as bulk_router
from interop.api.fhir.routes import public_router as fhir_public_router
from interop.api.fhir.routes import router as fhir_router
from interop.api.inbound.routes import router as inbound_router
from interop.api.prefer import CombinedPrefer
from interop.api.sync.routes import router as sync_router
from interop.auth.jwks import JwksFetcher
from interop.auth.oidc import OidcClient, OidcConfig
from interop.services.bulk_export import BulkExports, ExportPolicy
from interop.services.bundles import BundleService
from interop.services.capability import capability_statement
from interop.services.cases import CaseService
from interop.services.ccda_intake import DocumentIntake
from interop.services.cds import ConsentConsult
from interop.services.compliance import ComplianceService
from interop.services.console_cases import CaseConsole
from interop.services.console_review import ReviewConsole
from interop.services.disclosure import DisclosureGate
from interop.services.everything import PatientEverything
from interop.services.export_worker import ExportWorker
from interop.services.exports import DocumentExports
from interop.services.forms import ConsentForms
from interop.services.inbound import InboundService
from interop.services.partners import PartnerService
from interop.services.resources import ResourceService
from interop.services.search_parser import Paging
from interop.services.staff import LoginPolicy, StaffService
from interop.services.tokens import TokenPolicy, TokenService
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.migrate import upgrade
from interop.sync.deliveries import Deliveries
from interop.sync.runtime import sync_identity
from interop.sync.subscribing import NotificationInbox

RELEASED = "2026-11-25"


def utc_now() -> datetime:
    return datetime.now(UTC)


def software_version() -> str:
    try:
        return version("recovery-interop")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def create_app(settings: Settings, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The service, wired to the database `settings` name; `clock` is the time consents are
    judged at (tests pin it; production uses the wall clock)."""
    engine = make_engine(settings.database_url, chain_key=settings.chain_key())
    if settings.auto_migrate:
        upgrade(engine)
    http = httpx.Client()

    @asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[None]:
        to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        worker: ExportWorker | None = None
        if settings.export_worker:
            worker = ExportWorker(served.state.bulk_exports, settings.export_poll_seconds)
            worker.start()
        yield
        if worker is not None:
            worker.stop()
        http.close()
        engine.dispose()

    app = FastAPIOffline(  # /docs and /redoc from packaged assets: no CDN
        title="Recovery Interop",
        version=software_version(),
        summary="FHIR R4 interoperability for addiction-treatment case management",
        lifespan=lifespan,
    )
    paging = Paging(settings.default_page_size, settings.max_page_size)
    app.state.settings = settings
    gates = DisclosureGate(engine, clock, settings.intermediary_organization)
    app.state.resources = ResourceService(engine, paging, gates)
    app.state.bundles = BundleService(engine, paging, gates)
    app.state.bulk_exports = BulkExports(engine, gates, paging, export_policy(settings))
    app.state.everything = PatientEverything(engine, gates, paging)
    app.state.partners = PartnerService(engine)
    app.state.tokens = TokenService(
        engine,
        app.state.partners,
        JwksFetcher(http, settings.jwks_cache_seconds),
        TokenPolicy(
            signing_key=settings.signing_key(),
            access_token_lifetime=timedelta(seconds=settings.access_token_seconds),
            assertion_max_lifetime_seconds=settings.assertion_max_lifetime_seconds,
        ),
    )
    app.state.staff = StaffService(engine, login_policy(settings))
    app.state.compliance = ComplianceService(engine)
    app.state.consent_consult = ConsentConsult(engine, gates)
    app.state.consent_forms = ConsentForms(engine, clock)
    app.state.cases = CaseService(engine, gates)
    app.state.exports = DocumentExports(
        engine, gates, app.state.cases, settings.document_oid_root, clock
    )
    app.state.inbound = InboundService(engine, clock)
    app.state.ccda_intake = DocumentIntake(engine, clock)
    app.state.deliveries = Deliveries(engine, clock)
    app.state.review_console = ReviewConsole(
        app.state.resources, app.state.compliance, app.state.consent_forms, engine
    )
    app.state.case_console = CaseConsole(app.state.resources, app.state.cases)
    app.state.sync_identity = sync_identity(settings)
    app.state.notifications = NotificationInbox(engine, clock)
    app.state.oidc = oidc_client(settings, http)
    app.state.capability = capability_statement(
        software_version=software_version(), released=RELEASED
    )
    outcomes.install(app)
    app.include_router(auth_router)
    app.include_router(fhir_public_router)
    app.include_router(bulk_router)  # before the FHIR routes, whose paths would take $export
    app.include_router(fhir_router)
    app.include_router(admin_router)
    app.include_router(deliveries_router)
    app.include_router(forms_router)
    app.include_router(audit_router)
    app.include_router(cds_router)
    app.include_router(cases_router)
    app.include_router(inbound_router)
    app.include_router(sync_router)
    console.install(app)
    app.add_middleware(BrowserFhirView)
    app.add_middleware(CombinedPrefer)
    app.add_middleware(NoStore)
    return app


def oidc_client(settings: Settings, http: httpx.Client) -> OidcClient | None:
    """Staff sign-in through an OpenID Connect provider, when the settings name one."""
    if settings.oidc_issuer is None or settings.oidc_client_id is None:
        return None
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    root = (settings.public_base_url or "http://127.0.0.1:8080").rstrip("/")
    config = OidcConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=secret,
        redirect_uri=f"{root}/auth/oidc/callback",
    )
    return OidcClient(config, http, settings.signing_key())


def export_policy(settings: Settings) -> ExportPolicy:
    return ExportPolicy(
        page_size=settings.export_page_size,
        retention=timedelta(hours=settings.export_retention_hours),
        lease=timedelta(seconds=settings.export_lease_seconds),
        retry_after_seconds=max(1, round(settings.export_poll_seconds)),
    )


def login_policy(settings: Settings) -> LoginPolicy:
    return LoginPolicy(
        max_failures=settings.login_max_failures,
        lockout=timedelta(minutes=settings.login_lockout_minutes),
        session_lifetime=timedelta(hours=settings.session_hours),
    )


def app_from_environment() -> FastAPI:
    """The app of one worker process of `interop serve --workers N`: settings from the
    environment the parent set, the schema already brought up to date by the parent."""
    app = create_app(Settings())
    logs.install()
    return app
