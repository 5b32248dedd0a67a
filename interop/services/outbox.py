"""Which changes must reach which partner: written to the outbox in the transaction of the
change itself (ARCHITECTURE.md rule 5), so a change is never stored without its notice, nor a
notice queued for a change that rolled back.

A referral's Task is shared by its requester and its owner (REFERRALS.md); when either is a
partner with a channel, the other side's changes are queued for it. What each channel can
carry decides the events:

    channel          partner is the Task's owner            partner is the Task's requester
    fhir             every new version once requested       every status change
    ccda-http,       the Task enters `requested`: a         nothing (C-CDA carries no
    ccda-directory   Referral Note, or a Transfer Summary   status back)
                     for a handoff
    hl7v2-mllp       enters `requested` (REF^I12),          every status change (RRI^I12)
                     enters `cancelled` (REF^I14)

A partner is never told of a change it made itself, nor, as requester, of the Task it created,
nor of changes to a copy of its own Task it pushed here (it reads those back: polls and
Subscriptions), which pushed back would land there as a second referral.

Subscriptions (mappings.subscription) add to this, whatever the partner's channel: a
Subscription entering `requested` queues its handshake, and each change of a Task its
partner is party to (in the roles it subscribed for) queues an id-only notification.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlmodel import Session

from interop.store import outbox
from interop.store.repository import StoredVersion
from interop.store.search_params import parse_reference
from interop.store.tables import OutboxRow
from mappings import subscription


class ChannelKind(StrEnum):
    """How a partner receives changes (part of its registration)."""

    NONE = "none"  # the partner polls our FHIR API (REFERRALS.md, "a partner without one")
    FHIR = "fhir"
    CCDA_HTTP = "ccda-http"
    CCDA_DIRECTORY = "ccda-directory"
    HL7V2_MLLP = "hl7v2-mllp"


class Event(StrEnum):
    TASK_CHANGED = "task-changed"  # FHIR: the current Task and its ServiceRequest
    REFERRAL_SENT = "referral-sent"  # a document or REF^I12 for a new referral
    REFERRAL_CANCELLED = "referral-cancelled"  # REF^I14
    STATUS_RETURNED = "status-returned"  # RRI^I12 to a v2 referrer
    HANDSHAKE = "handshake"  # a Subscription's first notification, which activates it
    NOTIFICATION = "notification"  # a Task a Subscription covers changed (id-only)


_DOCUMENT_CHANNELS = (ChannelKind.CCDA_HTTP, ChannelKind.CCDA_DIRECTORY)
REST_HOOK = "rest-hook"
"""The channel of outbox rows for Subscriptions, whatever the partner's registered channel."""
COPY_IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"
"""The identifier system of a copy's original URL (interop.sync.payloads.URI_SYSTEM)."""


@dataclass(frozen=True, slots=True)
class _Change:
    """The parties and the status move of one Task write."""

    owner: str | None
    requester: str | None
    old_status: str | None
    new_status: str | None

    @property
    def status_moved(self) -> bool:
        return self.old_status is not None and self.old_status != self.new_status

    def entered(self, status: str) -> bool:
        return self.new_status == status and self.old_status != status


def event_for(
    channel: str, role: str, change: _Change, created: bool, copy: bool = False
) -> Event | None:
    """The table of the module docstring: what this partner is told of this change. `copy`:
    the Task is a copy of one on another server (its requester pushed it here), which that
    requester reads back through polls and Subscriptions; pushed back, it would land there as
    a second referral."""
    if role == "owner":
        never_sent = change.old_status in (None, "draft")
        if change.new_status == "draft" or (never_sent and change.new_status == "cancelled"):
            return None  # the owner hears of a referral once it is requested, never of a draft
        if channel == ChannelKind.FHIR:
            return Event.TASK_CHANGED
        if change.entered("requested"):
            return Event.REFERRAL_SENT
        if channel == ChannelKind.HL7V2_MLLP and change.entered("cancelled"):
            return Event.REFERRAL_CANCELLED
        return None
    if created or copy or not change.status_moved or channel in _DOCUMENT_CHANNELS:
        return None
    return Event.TASK_CHANGED if channel == ChannelKind.FHIR else Event.STATUS_RETURNED


def note_change(
    session: Session,
    stored: StoredVersion,
    before: bytes | None,
    origin: str | None,
) -> None:
    """Queue what this write must tell partners, in the caller's transaction; `origin` is the
    Organization of the partner making the change, if a partner is."""
    if stored.resource_type == "Subscription" and stored.content is not None:
        _note_subscription(session, stored)
    if stored.resource_type != "Task" or stored.content is None:
        return
    after = orjson.loads(stored.content)
    previous = orjson.loads(before) if before is not None else None
    change = _Change(
        owner=_organization(after.get("owner")),
        requester=_organization(after.get("requester")),
        old_status=previous.get("status") if previous is not None else None,
        new_status=after.get("status"),
    )
    ids = [ref.split("/")[1] for ref in (change.owner, change.requester) if ref is not None]
    rows = []
    for partner in outbox.pushing_partners(session, ids):
        if partner.organization == origin:
            continue
        role = "owner" if partner.organization == change.owner else "requester"
        event = event_for(partner.channel, role, change, previous is None, _is_copy(after))
        if event is not None:
            rows.append(_row(partner.client_id, partner.channel, event, stored))
    rows.extend(_notifications(session, stored, change, origin))
    if rows:
        outbox.add(session, rows)


def _notifications(
    session: Session, stored: StoredVersion, change: _Change, origin: str | None
) -> list[OutboxRow]:
    """One notification per active Subscription of a party to the Task, but not to the party
    that made the change (Subscriptions R5 Backport: topic referral-task)."""
    rows = []
    for content in outbox.subscriptions(session):
        subscribed = subscription.read(orjson.loads(content))
        if subscribed is None or subscribed.status != "active" or subscribed.subscriber == origin:
            continue
        parties = {"owner": change.owner, "requester": change.requester}
        if not any(parties[role] == subscribed.subscriber for role in subscribed.roles):
            continue
        partner = outbox.partner_of(session, subscribed.subscriber.split("/")[-1])
        if partner is not None:
            event = Event.NOTIFICATION
            rows.append(_row(partner.client_id, REST_HOOK, event, stored, subscribed.id))
    return rows


def _note_subscription(session: Session, stored: StoredVersion) -> None:
    """A Subscription requested (new, or changed by its partner) gets its handshake."""
    subscribed = subscription.read(orjson.loads(stored.content or b"{}"))
    if subscribed is None or subscribed.status != "requested":
        return
    partner = outbox.partner_of(session, subscribed.subscriber.split("/")[-1])
    if partner is not None:
        row = _row(partner.client_id, REST_HOOK, Event.HANDSHAKE, stored, subscribed.id)
        outbox.add(session, [row])


def _row(
    client_id: str,
    channel: str,
    event: Event,
    stored: StoredVersion,
    subscription_id: str | None = None,
) -> OutboxRow:
    return OutboxRow(
        created_at=stored.last_updated,
        partner_client_id=client_id,
        channel=channel,
        event=event,
        resource_type=stored.resource_type,
        resource_id=stored.resource_id,
        version_id=stored.version_id,
        state=outbox.TransportState.QUEUED,
        next_attempt_at=stored.last_updated,
        subscription_id=subscription_id,
    )


def _is_copy(resource: dict[str, Any]) -> bool:
    """A copy of a Task on another server carries that Task's absolute URL as an identifier
    (interop.sync.payloads pushes them so); Tasks written here never do."""
    identifiers = resource.get("identifier")
    return any(
        isinstance(item, dict)
        and item.get("system") == COPY_IDENTIFIER_SYSTEM
        and "/Task/" in str(item.get("value", ""))
        for item in (identifiers if isinstance(identifiers, list) else [])
    )


def _organization(reference: Any) -> str | None:
    """The Organization a party reference names, relative or absolute (REFERRALS.md: across
    servers references are absolute, and partners write ours that way). Only ids of registered
    partners' Organizations are then looked up, and those are UUIDs this server minted, so an
    absolute URL naming one names ours, whichever base it was written with."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    parsed = parse_reference(reference["reference"])
    if parsed is None or parsed[0] != "Organization":
        return None
    return f"Organization/{parsed[1]}"
