"""Deliveries of changes to partners (the sync outbox)."""

import logging
import signal
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer

from interop.cli.common import CliError, DatabaseOption, engine, print_json, settings

app = typer.Typer(help="Deliveries of changes to partners (the sync outbox).", no_args_is_help=True)


_NOTIFIED_POLL_SECONDS = 0.25
"""How often the poller looks for partners that notified us: a change at a partner reaches
us well within a second (one indexed query each time)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _show_progress() -> None:
    """The workers' one line per delivery or poll round, and their start line, on stderr; other
    libraries stay at warnings (an HTTP client's request lines name identifiers in URLs)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("interop.sync").setLevel(logging.INFO)


def _stop_on_signals() -> threading.Event:
    """Set by SIGINT or SIGTERM, so a worker finishes the delivery in hand and stops."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


@app.command("dispatch")
def dispatch(
    once: Annotated[bool, typer.Option(help="Work what is due now, then stop.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds to rest when nothing is due.", min=0.05)
    ] = 2.0,
    batch: Annotated[int, typer.Option(help="Deliveries claimed per round.", min=1)] = 20,
    database_url: DatabaseOption = None,
) -> None:
    """Deliver queued changes to partners; run as many dispatchers as you like, anywhere."""
    from interop import logs
    from interop.sync.runtime import dispatcher

    configured = settings(database_url)
    logs.install()
    _show_progress()
    with dispatcher(configured, engine(database_url)) as worker:
        if once:
            outcomes = worker.run_once(batch)
            print_json([{"id": o.pk, "state": o.state.value, "error": o.error} for o in outcomes])
            return
        worker.run_forever(_stop_on_signals(), interval, batch)


@app.command("poll")
def poll(
    once: Annotated[bool, typer.Option(help="Read each partner once, then stop.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between full rounds.", min=1)] = 60.0,
    database_url: DatabaseOption = None,
) -> None:
    """Read FHIR partners' servers back for what they did to our referrals, and apply it;
    between rounds, at once for a partner whose server notified us."""
    from interop import logs
    from interop.sync.runtime import poller

    configured = settings(database_url)
    logs.install()
    _show_progress()
    with poller(configured, engine(database_url)) as reader:
        if once:
            print_json([asdict(report) for report in reader.run_once()])
            return
        reader.announce(interval)
        stop = _stop_on_signals()
        while not stop.is_set():
            reader.run_once()
            deadline = time.monotonic() + interval
            while not stop.is_set() and time.monotonic() < deadline:
                reader.run_requested()
                stop.wait(_NOTIFIED_POLL_SECONDS)


@app.command("subscribe")
def subscribe(
    client_id: str,
    topic: Annotated[
        str | None,
        typer.Option(help="The partner's subscription topic (default: our referral-task topic)."),
    ] = None,
    filter_criteria: Annotated[
        list[str], typer.Option("--filter", help="e.g. Task?requester=...; repeatable.")
    ] = [],  # noqa: B006
    database_url: DatabaseOption = None,
) -> None:
    """Subscribe at a FHIR partner's server, so it notifies us of its changes."""
    from adapters.errors import AdapterError
    from interop.sync.runtime import deliverer, public_root
    from interop.sync.subscribing import PartnerSubscriptions
    from mappings.terminology import REFERRAL_TASK_TOPIC

    configured = settings(database_url)
    made = engine(database_url)
    with deliverer(configured, made) as channels:
        subscriptions = PartnerSubscriptions(made, channels, public_root(configured))
        try:
            location = subscriptions.subscribe(
                client_id, topic or REFERRAL_TASK_TOPIC, filter_criteria
            )
        except AdapterError as error:
            raise CliError(f"the partner did not take the Subscription: {error}") from None
    typer.echo(f"subscribed at {client_id}: {location or 'created'}")


@app.command("status")
def status(
    state: Annotated[list[str], typer.Option(help="Transport state; repeatable.")] = [],  # noqa: B006
    partner: Annotated[str | None, typer.Option(help="A partner's client_id.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    database_url: DatabaseOption = None,
) -> None:
    """Deliveries, newest first, as JSON; on stderr, whether more match than --limit shows."""
    from interop.sync.deliveries import Deliveries

    shown = Deliveries(engine(database_url), _utc_now).page(state, partner, limit)
    print_json([asdict(view) for view in shown.views])
    if shown.truncated:
        typer.echo(
            f"truncated: the newest {limit} deliveries are shown and more match;"
            " raise --limit or narrow with --state / --partner",
            err=True,
        )


@app.command("retry")
def retry(delivery_id: int, database_url: DatabaseOption = None) -> None:
    """Send a failed or withheld delivery again, from its first attempt."""
    from interop.sync.deliveries import Deliveries

    view = Deliveries(engine(database_url), _utc_now).retry(delivery_id)
    typer.echo(f"delivery {view.id} is {view.state}")


@app.command("jwks")
def jwks() -> None:
    """The public key partners register for us (SYNC_SIGNING_KEY_FILE's public half)."""
    from interop.sync.runtime import sync_identity

    identity = sync_identity(settings())
    if identity is None:
        raise CliError("SYNC_SIGNING_KEY_FILE is not set: point it at our PEM signing key")
    print_json(identity.jwks())
