"""What a partner may write: isolation between partners sharing this service.

A partner authors its own referrals (ServiceRequest.requester is its Organization), works the
Tasks it requests or owns (REFERRALS.md: the requester and the owner share a Task), and never
touches another partner's registration (Organizations tagged as partner registrations are
written only by administrators, through the partner registry). Nor does it change an
Organization someone else recorded: whether a program is a Part 2 program is read from its
Organization, and a partner clearing that flag would release the program's records. Any other
record it changes or deletes must be one it wrote (a version of it): a recipient that reads a
program's care plan or a patient's consent may not rewrite it, which would put words in the
program's record or revoke a consent the patient never revoked (PART2.md C6).
"""

from typing import Any

import orjson

from interop.auth.requester import Requester
from interop.services.errors import Forbidden
from interop.services.subscriptions import is_subscriber
from interop.store.search_params import parse_reference
from mappings.terminology import REGISTRATION_TAG_SYSTEM
from mappings.workflow import is_fulfillment

REGISTRATION_TAG_CODE = (REGISTRATION_TAG_SYSTEM, "partner")
_SHARED_TYPES = frozenset({"ServiceRequest", "Task", "Subscription"})
"""Written by the parties they name, whoever recorded them: each has its own rule below."""


class PartnerWriteGuard:
    """Checks each create, update and delete a partner makes against what it may author."""

    def __init__(self, requester: Requester, base_url: str) -> None:
        self._organization = requester.organization
        self._base_url = base_url.rstrip("/")

    @property
    def organization(self) -> str:
        return self._organization

    @property
    def acts_for_either(self) -> bool:
        return False

    def check(
        self,
        resource_type: str,
        old: bytes | None,
        new: dict[str, Any] | None,
        custodians: tuple[str, ...] = (),
    ) -> None:
        """`custodians` are the organizations that wrote the stored versions, if any."""
        before = orjson.loads(old) if old is not None else None
        for resource in (before, new):
            if resource is not None and _is_registration(resource):
                raise Forbidden("partner registrations are managed by administrators only")
        if resource_type == "AuditEvent" and before is not None:
            raise Forbidden(
                "an AuditEvent is kept as it was written: a partner adds audit records, never "
                "changes or deletes one (R4 AuditEvent: audit records are not updated)"
            )
        if (
            resource_type == "Organization"
            and custodians
            and set(custodians) != {self._organization}
        ):
            raise Forbidden(
                "a partner changes only the Organizations it recorded: the facts of another "
                "program (its Part 2 status above all) are the operator's to change"
            )
        if (
            custodians
            and not self._shared(resource_type, before, new)
            and self._organization not in custodians
        ):
            raise Forbidden(
                f"a partner changes only records it wrote: this {resource_type} was recorded "
                "by another organization"
            )
        theirs = before is not None and not is_subscriber(before, self._organization)
        if resource_type == "Subscription" and theirs:
            raise Forbidden("a partner writes only its own Subscriptions")
        if resource_type == "ServiceRequest":
            self._require_party(resource_type, before, new, ("requester",))
        elif resource_type == "Task" and self._shared(resource_type, before, new):
            self._require_party(resource_type, before, new, ("requester", "owner"))

    def _shared(
        self, resource_type: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> bool:
        """Written by the parties it names, whoever recorded it (each has its rule above)."""
        return resource_type in _SHARED_TYPES

    def _require_party(
        self,
        resource_type: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        roles: tuple[str, ...],
    ) -> None:
        """Both the stored and the new version must name the partner in one of `roles`."""
        for resource in (before, after):
            if resource is not None and not any(
                self._names_us(resource.get(role)) for role in roles
            ):
                raise Forbidden(
                    f"a partner may write only where it is the {' or '.join(roles)}",
                    tuple(f"{resource_type}.{role}" for role in roles),
                )

    def _names_us(self, reference: Any) -> bool:
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            return False
        text = reference["reference"].removeprefix(self._base_url + "/")
        parsed = parse_reference(text)
        return (
            parsed is not None
            and parsed[2] is None
            and f"{parsed[0]}/{parsed[1]}" == self._organization
        )


def _is_registration(resource: dict[str, Any]) -> bool:
    tags = resource.get("meta", {}).get("tag", [])
    return any((tag.get("system"), tag.get("code")) == REGISTRATION_TAG_CODE for tag in tags)


class ProgramStaffWriteGuard(PartnerWriteGuard):
    """What a case manager of a program other than the one whose own systems this service is
    may write through the case API: what that program's partner registration may. A consent,
    a goal or a care plan another program recorded is that program's to change, and a
    referral's Task is worked by its parties only. A case manager's own action Task (any Task
    but a referral's) names the manager, not the program, so it is the program's like any
    record it wrote, by who wrote it. Its case managers record what happened in a referral's
    workflow as the program's staff do (either side, mappings.workflow)."""

    @property
    def acts_for_either(self) -> bool:
        return True

    def _shared(
        self, resource_type: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> bool:
        if resource_type != "Task":
            return resource_type in _SHARED_TYPES
        return any(task is not None and is_fulfillment(task) for task in (before, after))
