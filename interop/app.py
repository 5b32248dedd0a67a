"""create_app(settings) -> FastAPI: routers, error handlers, and the services they call."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from interop.api import outcomes
from interop.api.fhir.routes import router as fhir_router
from interop.services.bundles import BundleService
from interop.services.capability import capability_statement
from interop.services.resources import ResourceService
from interop.services.search_parser import Paging
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.migrate import upgrade

RELEASED = "2026-11-25"


def software_version() -> str:
    try:
        return version("recovery-interop")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def create_app(settings: Settings) -> FastAPI:
    """The service, wired to the database `settings` name."""
    engine = make_engine(settings.database_url)
    if settings.auto_migrate:
        upgrade(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="Recovery Interop",
        version=software_version(),
        summary="FHIR R4 interoperability for addiction-treatment case management",
        lifespan=lifespan,
    )
    paging = Paging(settings.default_page_size, settings.max_page_size)
    app.state.settings = settings
    app.state.resources = ResourceService(engine, paging)
    app.state.bundles = BundleService(engine, paging)
    app.state.capability = capability_statement(
        base_url=(settings.public_base_url or "") + "/fhir",
        software_version=software_version(),
        released=RELEASED,
    )
    outcomes.install(app)
    app.include_router(fhir_router)
    return app
