"""The `interop` command: serve the API, manage the database, export the OpenAPI document."""

import asyncio
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
import uvicorn
from sqlalchemy import Engine

from adapters.errors import AdapterError
from adapters.hl7v2 import serve_mllp
from interop import logs
from interop.api.admin.routes import describe, split_identifier
from interop.app import create_app, login_policy, utc_now
from interop.services.cases import CaseService
from interop.services.compliance import ComplianceService
from interop.services.demo import CLIENT, story
from interop.services.disclosure import DisclosureGate
from interop.services.errors import ServiceError
from interop.services.inbound import InboundService
from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, NewPartner, PartnerService
from interop.services.staff import Role, StaffPrincipal, StaffService
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.fhirdates import now_ms
from interop.store.migrate import upgrade
from interop.sync.deliveries import Deliveries
from interop.sync.runtime import deliverer, dispatcher, poller, public_root, sync_identity
from interop.sync.subscribing import PartnerSubscriptions
from mappings.terminology import REFERRAL_TASK_TOPIC

app = typer.Typer(help="Recovery Interop: FHIR R4 interoperability for addiction treatment.")
db_app = typer.Typer(help="Database schema.")
partners_app = typer.Typer(help="Partner systems (SMART Backend Services clients).")
users_app = typer.Typer(help="Staff accounts.")
audit_app = typer.Typer(help="The disclosure log.")
hl7v2_app = typer.Typer(help="HL7 v2 messages from files.")
sync_app = typer.Typer(help="Deliveries of changes to partners (the sync outbox).")
app.add_typer(db_app, name="db")
app.add_typer(partners_app, name="partners")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(hl7v2_app, name="hl7v2")
app.add_typer(sync_app, name="sync")

DatabaseOption = Annotated[
    str | None, typer.Option(help="Database URL (default: DATABASE_URL or SQLite under ./var/).")
]


def _settings(database_url: str | None) -> Settings:
    if database_url is None:
        return Settings()
    return Settings(database_url=database_url)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8080,
    host: Annotated[
        str, typer.Option(help="Interface to bind; loopback by default.")
    ] = "127.0.0.1",
    database_url: Annotated[
        str | None,
        typer.Option(help="Database URL (default: DATABASE_URL or SQLite under ./var/)."),
    ] = None,
) -> None:
    """Run the HTTP service."""
    service = create_app(_settings(database_url))
    config = uvicorn.Config(service, host=host, port=port, log_level="info", access_log=False)
    server = uvicorn.Server(config)
    logs.install()  # after uvicorn configured its loggers, so the filters stay
    server.run()


@db_app.command("upgrade")
def db_upgrade(
    database_url: Annotated[str | None, typer.Option(help="Database URL.")] = None,
) -> None:
    """Bring the database schema up to date."""
    upgrade(make_engine(_settings(database_url).database_url))
    typer.echo("database schema is up to date")


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the document.")] = Path(
        "openapi/openapi.json"
    ),
) -> None:
    """Export the OpenAPI document the service publishes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(openapi_document())
    typer.echo(f"wrote {output}")


def openapi_document() -> bytes:
    """The OpenAPI document, rendered stably so that a diff shows real changes only."""
    service = create_app(Settings(database_url="sqlite://", auto_migrate=False))
    return (
        orjson.dumps(service.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )


def _engine(database_url: str | None) -> Engine:
    settings = _settings(database_url)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return engine


def _fhir_base(database_url: str | None) -> str:
    settings = _settings(database_url)
    return (settings.public_base_url or "http://127.0.0.1:8080").rstrip("/") + "/fhir"


def _print_json(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _fail(error: ServiceError) -> NoReturn:
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(2)


ChannelOption = Annotated[
    ChannelKind | None,
    typer.Option(help="How changes reach the partner; leave out when it polls our FHIR API."),
]
ChannelAddressOption = Annotated[
    str | None,
    typer.Option(help="FHIR base URL, document drop URL, absolute directory, or host:port."),
]
ChannelClientOption = Annotated[
    str | None, typer.Option(help="Our client_id at the partner's authorization server.")
]
ChannelTokenOption = Annotated[str | None, typer.Option(help="The partner's OAuth token URL.")]


def _channel(
    kind: ChannelKind | None, address: str | None, client_id: str | None, token_url: str | None
) -> ChannelConfig | None:
    if kind is None or kind is ChannelKind.NONE:
        return None
    if address is None:
        raise typer.BadParameter("--channel-address is required with --channel")
    return ChannelConfig(kind, address, client_id, token_url)


def _load_jwks(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    document = orjson.loads(path.read_bytes())
    if not isinstance(document, dict):
        raise typer.BadParameter("the JWKS file must hold a JSON object")
    return document


@partners_app.command("add")
def partners_add(
    name: Annotated[str, typer.Argument(help="The partner organization's name.")],
    identifier: Annotated[list[str], typer.Option(help="SYSTEM|VALUE; repeatable.")],
    scope: Annotated[str, typer.Option(help='Granted scopes, e.g. "system/*.rs system/Task.cru".')],
    jwks: Annotated[
        Path | None, typer.Option(help="File holding the partner's public JWKS.")
    ] = None,
    jwks_url: Annotated[str | None, typer.Option(help="HTTPS URL of the partner's JWKS.")] = None,
    part2_program: Annotated[
        bool, typer.Option(help="The partner is a 42 CFR Part 2 program.")
    ] = False,
    covered_entity: Annotated[
        bool, typer.Option(help="The partner is a HIPAA covered entity.")
    ] = False,
    first_party: Annotated[
        bool, typer.Option(help="The operating program's own system: may author any resource.")
    ] = False,
    channel: ChannelOption = None,
    channel_address: ChannelAddressOption = None,
    channel_client_id: ChannelClientOption = None,
    channel_token_url: ChannelTokenOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Register a partner; prints its client_id, token_url, fhir_base and organization as JSON."""
    config = _channel(channel, channel_address, channel_client_id, channel_token_url)
    service = PartnerService(_engine(database_url))
    try:
        partner = service.register(
            NewPartner(
                name=name,
                identifiers=[split_identifier(text) for text in identifier],
                scopes=scope,
                jwks=_load_jwks(jwks),
                jwks_url=jwks_url,
                part2_program=part2_program,
                covered_entity=covered_entity,
                first_party=first_party,
                channel=config,
            )
        )
    except ServiceError as error:
        _fail(error)
    described = describe(partner, _fhir_base(database_url))
    _print_json(
        described.model_dump(include={"client_id", "token_url", "fhir_base", "organization"})
    )


@partners_app.command("set-channel")
def partners_set_channel(
    client_id: str,
    channel: ChannelOption = None,
    channel_address: ChannelAddressOption = None,
    channel_client_id: ChannelClientOption = None,
    channel_token_url: ChannelTokenOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Change how changes reach the partner; without --channel it polls our FHIR API."""
    config = _channel(channel, channel_address, channel_client_id, channel_token_url)
    try:
        PartnerService(_engine(database_url)).set_channel(client_id, config)
    except ServiceError as error:
        _fail(error)
    typer.echo(f"{client_id} is reached by {config.kind.value if config else 'polling'}")


@partners_app.command("list")
def partners_list(database_url: DatabaseOption = None) -> None:
    """Every registered partner, as JSON."""
    base = _fhir_base(database_url)
    partners = PartnerService(_engine(database_url)).list()
    _print_json([describe(partner, base).model_dump() for partner in partners])


@partners_app.command("disable")
def partners_disable(client_id: str, database_url: DatabaseOption = None) -> None:
    """Refuse the partner new tokens, and its current tokens at once."""
    try:
        PartnerService(_engine(database_url)).set_enabled(client_id, False)
    except ServiceError as error:
        _fail(error)
    typer.echo(f"disabled {client_id}")


@partners_app.command("rotate-key")
def partners_rotate_key(
    client_id: str,
    jwks: Annotated[Path | None, typer.Option(help="File holding the new public JWKS.")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="HTTPS URL of the new JWKS.")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Replace the partner's keys."""
    try:
        PartnerService(_engine(database_url)).rotate_key(client_id, _load_jwks(jwks), jwks_url)
    except ServiceError as error:
        _fail(error)
    typer.echo(f"rotated the keys of {client_id}")


def _staff(database_url: str | None) -> StaffService:
    return StaffService(_engine(database_url), login_policy(_settings(database_url)))


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[Role, typer.Option(help="case-manager, compliance-officer or administrator.")],
    program: Annotated[
        list[str], typer.Option(help="Organization id of a program; repeatable.")
    ] = [],  # noqa: B006
    database_url: DatabaseOption = None,
) -> None:
    """Create a staff account; the password is asked for, never taken from the command line."""
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        _staff(database_url).add(username, password, role, tuple(program), now_ms())
    except ServiceError as error:
        _fail(error)
    typer.echo(f"added {username} ({role.value})")


@users_app.command("disable")
def users_disable(username: str, database_url: DatabaseOption = None) -> None:
    """Disable the account and end its sessions."""
    try:
        _staff(database_url).set_enabled(username, False)
    except ServiceError as error:
        _fail(error)
    typer.echo(f"disabled {username}")


@users_app.command("reset-password")
def users_reset_password(username: str, database_url: DatabaseOption = None) -> None:
    """Set a new password (asked for), end the account's sessions and lift any lockout."""
    password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        _staff(database_url).reset_password(username, password)
    except ServiceError as error:
        _fail(error)
    typer.echo(f"reset the password of {username}")


@audit_app.command("verify")
def audit_verify(database_url: DatabaseOption = None) -> None:
    """Check the disclosure log's hash chain; exit 1 naming the first row that does not hold."""
    report = ComplianceService(_engine(database_url)).verify()
    if report.intact:
        typer.echo(f"intact: {report.rows} rows")
        return
    typer.echo(f"BROKEN at row {report.first_broken_seq}: {report.problem}", err=True)
    raise typer.Exit(1)


@app.command()
def demo(database_url: DatabaseOption = None) -> None:
    """Seed a synthetic client's story: detox, care plan, referral, handoffs, IOP, aftercare."""
    engine = _engine(database_url)
    settings = _settings(database_url)
    cases = CaseService(engine, DisclosureGate(engine))
    seeder = StaffPrincipal("interop-demo", Role.ADMINISTRATOR, ())
    for kind, value in story():
        cases.put(kind, value, seeder)
    base = (settings.public_base_url or "http://127.0.0.1:8080").rstrip("/")
    typer.echo(f"seeded {len(story())} records for the synthetic client {CLIENT}")
    typer.echo(f"case API: {base}/cases/care-plans?client={CLIENT}")
    typer.echo(f"FHIR API: {base}/fhir/CarePlan?patient=Patient/{CLIENT}")


@app.command()
def mllp(
    port: Annotated[int, typer.Option(help="TCP port of the MLLP listener.")] = 2575,
    host: Annotated[
        str, typer.Option(help="Interface to bind; loopback by default.")
    ] = "127.0.0.1",
    database_url: DatabaseOption = None,
    max_message_bytes: Annotated[
        int, typer.Option(help="Larger frames are refused (AR).")
    ] = 1_048_576,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds before a silent peer is dropped.")
    ] = 300.0,
) -> None:
    """Receive HL7 v2 REF^I12 and ADT^A03 over MLLP; every message is kept and acknowledged."""
    inbound = InboundService(_engine(database_url), utc_now)

    async def handle(payload: bytes) -> bytes:
        return await asyncio.to_thread(inbound.receive, payload, "mllp")

    async def run() -> None:
        server = await serve_mllp(
            host, port, handle, max_message_bytes=max_message_bytes, idle_timeout=idle_timeout
        )
        typer.echo(f"MLLP listener on {host}:{server.port}")
        async with server:
            await asyncio.Event().wait()

    asyncio.run(run())


@hl7v2_app.command("import")
def hl7v2_import(
    file: Annotated[Path, typer.Argument(help="A file of messages: bare, MLLP-framed or a batch.")],
    database_url: DatabaseOption = None,
) -> None:
    """Read a file of HL7 v2 messages; prints one line per message with its ACK code."""
    acks = InboundService(_engine(database_url), utc_now).receive_file(file.read_bytes())
    for number, ack in enumerate(acks, start=1):
        code = next(
            (line.split(b"|")[1] for line in ack.split(b"\r") if line.startswith(b"MSA")), b""
        )
        typer.echo(f"message {number}: {code.decode()}")


def _stop_on_signals() -> threading.Event:
    """Set by SIGINT or SIGTERM, so a worker finishes the delivery in hand and stops."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


@sync_app.command("dispatch")
def sync_dispatch(
    once: Annotated[bool, typer.Option(help="Work what is due now, then stop.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds to rest when nothing is due.", min=0.05)
    ] = 2.0,
    batch: Annotated[int, typer.Option(help="Deliveries claimed per round.", min=1)] = 20,
    database_url: DatabaseOption = None,
) -> None:
    """Deliver queued changes to partners; run as many dispatchers as you like, anywhere."""
    settings = _settings(database_url)
    logs.install()
    engine = _engine(database_url)
    with dispatcher(settings, engine) as worker:
        if once:
            outcomes = worker.run_once(batch)
            _print_json([{"id": o.pk, "state": o.state.value, "error": o.error} for o in outcomes])
            return
        stop = _stop_on_signals()
        worker.run_forever(stop, interval, batch)


@sync_app.command("poll")
def sync_poll(
    once: Annotated[bool, typer.Option(help="Read each partner once, then stop.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between full rounds.", min=1)] = 60.0,
    database_url: DatabaseOption = None,
) -> None:
    """Read FHIR partners' servers back for what they did to our referrals, and apply it;
    between rounds, at once for a partner whose server notified us."""
    settings = _settings(database_url)
    logs.install()
    engine = _engine(database_url)
    with poller(settings, engine) as reader:
        if once:
            _print_json([asdict(report) for report in reader.run_once()])
            return
        stop = _stop_on_signals()
        while not stop.is_set():
            reader.run_once()
            deadline = time.monotonic() + interval
            while not stop.is_set() and time.monotonic() < deadline:
                reader.run_requested()
                stop.wait(1.0)


@sync_app.command("subscribe")
def sync_subscribe(
    client_id: str,
    topic: Annotated[
        str, typer.Option(help="The partner's subscription topic (canonical URL).")
    ] = REFERRAL_TASK_TOPIC,
    filter_criteria: Annotated[
        list[str], typer.Option("--filter", help="e.g. Task?requester=...; repeatable.")
    ] = [],  # noqa: B006
    database_url: DatabaseOption = None,
) -> None:
    """Subscribe at a FHIR partner's server, so it notifies us of its changes."""
    settings = _settings(database_url)
    engine = _engine(database_url)
    with deliverer(settings, engine) as channels:
        subscriptions = PartnerSubscriptions(engine, channels, public_root(settings))
        try:
            location = subscriptions.subscribe(client_id, topic, filter_criteria)
        except ServiceError as error:
            _fail(error)
        except AdapterError as error:
            typer.echo(f"error: the partner did not take the Subscription: {error}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"subscribed at {client_id}: {location or 'created'}")


@sync_app.command("status")
def sync_status(
    state: Annotated[list[str], typer.Option(help="Transport state; repeatable.")] = [],  # noqa: B006
    partner: Annotated[str | None, typer.Option(help="A partner's client_id.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    database_url: DatabaseOption = None,
) -> None:
    """Deliveries, newest first, as JSON."""
    try:
        views = Deliveries(_engine(database_url), utc_now).list(state, partner, limit)
    except ServiceError as error:
        _fail(error)
    _print_json([asdict(view) for view in views])


@sync_app.command("retry")
def sync_retry(delivery_id: int, database_url: DatabaseOption = None) -> None:
    """Send a failed or withheld delivery again, from its first attempt."""
    try:
        view = Deliveries(_engine(database_url), utc_now).retry(delivery_id)
    except ServiceError as error:
        _fail(error)
    typer.echo(f"delivery {view.id} is {view.state}")


@sync_app.command("jwks")
def sync_jwks() -> None:
    """The public key partners register for us (SYNC_SIGNING_KEY_FILE's public half)."""
    identity = sync_identity(Settings())
    if identity is None:
        typer.echo("error: SYNC_SIGNING_KEY_FILE is not set", err=True)
        raise typer.Exit(1)
    _print_json(identity.jwks())
