"""The requester every other part asks about: which organization, for what, allowed what."""

from dataclasses import dataclass

from interop.auth.scopes import Scope, allows, parse_scopes
from interop.auth.tokens import EmergencyFacts


@dataclass(frozen=True, slots=True)
class Requester:
    """A partner system acting for its organization, named by its access token."""

    client_id: str
    organization: str  # "Organization/{id}"
    scopes: tuple[Scope, ...]
    purposes: tuple[str, ...]
    emergency: EmergencyFacts | None
    part2_program: bool
    covered_entity: bool
    first_party: bool

    def may(self, resource_type: str, permission: str) -> bool:
        return allows(self.scopes, resource_type, permission)


def system_requester(job: str, on_behalf_of: str) -> Requester:
    """Internal work (message intake, registration, polling, seeding) as a named requester: it
    sees everything, as the program's own systems do, and its decisions are logged under
    `system:{job}`; what it writes records `on_behalf_of` as its origin."""
    return Requester(
        client_id=f"system:{job}",
        organization=on_behalf_of,
        scopes=parse_scopes("system/*.cruds"),
        purposes=(),
        emergency=None,
        part2_program=False,
        covered_entity=False,
        first_party=True,
    )
