"""A dispatcher wired from settings: the gate, the document exports, the channels' clients."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine

from interop.services.cases import CaseService
from interop.services.disclosure import DisclosureGate
from interop.services.exports import DocumentExports
from interop.settings import Settings
from interop.sync.channels import ChannelDeliverer
from interop.sync.dispatcher import Dispatcher, RetryPolicy
from interop.sync.identity import SyncIdentity, load_identity
from interop.sync.notifications import Notifier, on_private_network
from interop.sync.payloads import Payloads
from interop.sync.poller import Poller
from interop.sync.v2 import V2Messages


def _utc_now() -> datetime:
    return datetime.now(UTC)


def sync_identity(settings: Settings) -> SyncIdentity | None:
    if settings.sync_signing_key_file is None:
        return None
    return load_identity(settings.sync_signing_key_file, settings.sync_signing_kid)


def public_root(settings: Settings) -> str:
    """Where partners reach this service."""
    return (settings.public_base_url or "http://127.0.0.1:8080").rstrip("/")


def fhir_base(settings: Settings) -> str:
    """Where partners reach our FHIR API: pushed references point there."""
    return public_root(settings) + "/fhir"


@contextmanager
def deliverer(
    settings: Settings, engine: Engine, clock: Callable[[], datetime] = _utc_now
) -> Iterator[ChannelDeliverer]:
    """The channels and the HTTP client they share between partners, closed on exit.
    Redirects are never followed: patient data goes to the registered address or nowhere."""
    gates = DisclosureGate(engine, clock, settings.intermediary_organization)
    exports = DocumentExports(
        engine, gates, CaseService(engine, gates), settings.document_oid_root, clock
    )
    payloads = Payloads(engine, gates, exports, fhir_base(settings))
    timeout = settings.sync_timeout_seconds
    with httpx.Client(timeout=timeout, follow_redirects=False) as http:
        notifier = Notifier(
            engine,
            payloads,
            http,
            fhir_base(settings),
            clock,
            private_endpoints=settings.subscription_private_endpoints
            or on_private_network(public_root(settings)),
        )
        yield ChannelDeliverer(
            payloads, http, sync_identity(settings), V2Messages(payloads, clock), notifier, timeout
        )


@contextmanager
def poller(
    settings: Settings, engine: Engine, clock: Callable[[], datetime] = _utc_now
) -> Iterator[Poller]:
    """A poller of FHIR partners' servers, sharing the channels' clients and tokens."""
    with deliverer(settings, engine, clock) as channels:
        yield Poller(engine, channels, fhir_base(settings), clock)


@contextmanager
def dispatcher(
    settings: Settings, engine: Engine, clock: Callable[[], datetime] = _utc_now
) -> Iterator[Dispatcher]:
    """A dispatcher over the partners' channels."""
    with deliverer(settings, engine, clock) as channels:
        policy = RetryPolicy(
            max_attempts=settings.sync_max_attempts,
            backoff=timedelta(seconds=settings.sync_backoff_seconds),
            backoff_max=timedelta(seconds=settings.sync_backoff_max_seconds),
            lease=timedelta(seconds=settings.sync_lease_seconds),
        )
        yield Dispatcher(
            engine,
            channels,
            policy,
            clock,
            concurrency=settings.sync_concurrency,
            together=settings.sync_batch,
        )
