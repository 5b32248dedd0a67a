"""Partner systems: registration, keys, channels."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from interop.cli.common import (
    AlgorithmChoice,
    ChannelChoice,
    CliError,
    DatabaseOption,
    engine,
    print_json,
    public_root,
    read_file,
    settings,
)

if TYPE_CHECKING:
    from interop.services.partners import ChannelConfig, Partner

app = typer.Typer(help="Partner systems (SMART Backend Services clients).", no_args_is_help=True)

ChannelOption = Annotated[
    ChannelChoice | None,
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
JWKS_HINT = "give the partner's public JWKS (`interop partners keygen NAME` writes one)"


@app.command("add")
def add(
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
    quiet: Annotated[bool, typer.Option(help="Print the client_id alone, for scripts.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Register a partner (linked to the Organization its identifier names, when one is
    stored); prints its client_id, token_url, fhir_base and organization as JSON."""
    from interop.services.partners import NewPartner, PartnerService

    name = organization_name(name)
    config = channel_config(channel, channel_address, channel_client_id, channel_token_url)
    new = NewPartner(
        name=name,
        identifiers=[split_identifier(text) for text in identifier],
        scopes=scope,
        jwks=load_jwks(jwks),
        jwks_url=jwks_url,
        part2_program=part2_program,
        covered_entity=covered_entity,
        first_party=first_party,
        channel=config,
    )
    partner = PartnerService(engine(database_url)).register(new)
    if quiet:
        typer.echo(partner.client_id)
        return
    described = describe(partner, public_root(settings(database_url)))
    print_json(
        {key: described[key] for key in ("client_id", "token_url", "fhir_base", "organization")}
    )


@app.command("keygen")
def keygen(
    name: Annotated[str, typer.Argument(help="File name stem, e.g. the partner's short name.")],
    folder: Annotated[
        Path,
        typer.Option("--dir", help="Where to write the files; made (with its parents) if missing."),
    ] = Path("."),
    algorithm: Annotated[
        AlgorithmChoice, typer.Option(help="Signing algorithm.")
    ] = AlgorithmChoice.RS384,
) -> None:
    """Write a key pair: NAME.key.pem (private, keep it) and NAME.jwks.json (register it);
    refused, with nothing written, when either file is already there."""
    from interop.cli.keys import write_key_pair

    if not name or "/" in name or name.startswith("."):
        raise CliError(f"{name!r} is not a file name stem: use letters, digits and dashes", 2)
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--dir {folder} is a file, not a folder: give a folder", 2)
    files = write_key_pair(folder, name, algorithm.value)
    typer.echo(f"private key: {files.private_key} (keep it; `interop token` signs with it)")
    typer.echo(
        f"public JWKS: {files.jwks} (register it: `interop partners add ... --jwks {files.jwks}`)"
    )
    typer.echo(f"kid: {files.kid}")


@app.command("set-channel")
def set_channel(
    client_id: str,
    channel: ChannelOption = None,
    channel_address: ChannelAddressOption = None,
    channel_client_id: ChannelClientOption = None,
    channel_token_url: ChannelTokenOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Change how changes reach the partner; without --channel it polls our FHIR API."""
    from interop.services.partners import PartnerService

    config = channel_config(channel, channel_address, channel_client_id, channel_token_url)
    PartnerService(engine(database_url)).set_channel(client_id, config)
    typer.echo(f"{client_id} is reached by {config.kind.value if config else 'polling'}")


@app.command("list")
def list_partners(database_url: DatabaseOption = None) -> None:
    """Every registered partner, as JSON."""
    from interop.services.partners import PartnerService

    root = public_root(settings(database_url))
    print_json([describe(partner, root) for partner in PartnerService(engine(database_url)).list()])


@app.command("disable")
def disable(client_id: str, database_url: DatabaseOption = None) -> None:
    """Refuse the partner new tokens, and its current tokens at once."""
    from interop.services.partners import PartnerService

    PartnerService(engine(database_url)).set_enabled(client_id, False)
    typer.echo(f"disabled {client_id}")


@app.command("enable")
def enable(client_id: str, database_url: DatabaseOption = None) -> None:
    """Let a disabled partner have tokens again; what waited in the outbox for it goes out."""
    from interop.services.partners import PartnerService

    PartnerService(engine(database_url)).set_enabled(client_id, True)
    typer.echo(f"enabled {client_id}")


@app.command("rotate-key")
def rotate_key(
    client_id: str,
    jwks: Annotated[Path | None, typer.Option(help="File holding the new public JWKS.")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="HTTPS URL of the new JWKS.")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Replace the partner's keys."""
    from interop.services.partners import PartnerService

    PartnerService(engine(database_url)).rotate_key(client_id, load_jwks(jwks), jwks_url)
    typer.echo(f"rotated the keys of {client_id}")


def describe(partner: "Partner", root: str) -> dict[str, Any]:
    """What the partner's developers need: their client_id and where to use it."""
    channel = partner.channel
    return {
        "client_id": partner.client_id,
        "name": partner.name,
        "organization": partner.organization,
        "scope": partner.scopes,
        "part2_program": partner.part2_program,
        "covered_entity": partner.covered_entity,
        "first_party": partner.first_party,
        "enabled": partner.enabled,
        "token_url": f"{root}/auth/token",
        "fhir_base": f"{root}/fhir",
        "channel": None
        if channel is None
        else {
            "kind": channel.kind.value,
            "address": channel.address,
            "client_id": channel.client_id,
            "token_url": channel.token_url,
        },
    }


def organization_name(text: str) -> str:
    """The name without surrounding whitespace; a blank one is refused before anything is
    stored (it would become an Organization no one can find by name, or none at all)."""
    name = text.strip()
    if not name:
        raise CliError(
            "the partner's name is blank: give the organization's name, e.g. "
            "`interop partners add 'Bayview Outpatient' ...`",
            2,
        )
    return name


def split_identifier(text: str) -> tuple[str, str]:
    system, separator, value = text.partition("|")
    if not separator or not system or not value:
        raise CliError(
            f"--identifier takes SYSTEM|VALUE, not {text[:80]!r} "
            "(e.g. 'http://hl7.org/fhir/sid/us-npi|1234567893')",
            2,
        )
    return system, value


def channel_config(
    kind: ChannelChoice | None, address: str | None, client_id: str | None, token_url: str | None
) -> "ChannelConfig | None":
    from interop.services.outbox import ChannelKind
    from interop.services.partners import ChannelConfig

    if kind is None or kind is ChannelChoice.NONE:
        return None
    if address is None:
        raise CliError("--channel needs --channel-address (where the partner is reached)", 2)
    return ChannelConfig(ChannelKind(kind.value), address, client_id, token_url)


def load_jwks(path: Path | None) -> dict[str, Any] | None:
    """The JWKS file's object; one line for a file that is missing, a PEM, or not JSON."""
    if path is None:
        return None
    content = read_file(path, "JWKS file", JWKS_HINT)
    if content.lstrip().startswith(b"-----BEGIN"):
        raise CliError(f"{path} is a PEM key, not a JWKS: {JWKS_HINT}", 2)
    try:
        document = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CliError(f"{path} is not JSON ({error}): {JWKS_HINT}", 2) from None
    if not isinstance(document, dict):
        raise CliError(f'{path} must hold a JSON object {{"keys": [...]}}: {JWKS_HINT}', 2)
    return document
