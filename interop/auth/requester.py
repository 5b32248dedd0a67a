"""The requester every other part asks about: which organization, for what, allowed what."""

from dataclasses import dataclass

from interop.auth.scopes import Scope, allows
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
