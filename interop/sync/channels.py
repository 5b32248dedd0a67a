"""Each partner's channel, from its registration: the payload its adapter carries, built
through the gate as that partner (interop.sync.payloads), handed to the adapter.

The gate is asked with the partner's own registration: its granted scopes bound what is
pushed exactly as they bound what it could read (no scope, no data), and it asks for
treatment, the purpose a referral is made for.
"""

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from adapters.ccda.delivery import DirectoryChannel, HttpDropChannel
from adapters.errors import PartnerRefused, PartnerRejected, PartnerUnavailable
from adapters.fhir_http import BackendServicesAuth, BackendServicesConfig, FhirPartnerChannel
from adapters.ports import Receipt
from interop.auth.requester import Requester
from interop.auth.scopes import parse_scopes
from interop.services.outbox import REST_HOOK, ChannelKind
from interop.store.tables import OutboxRow, PartnerRow
from interop.sync.identity import SyncIdentity
from interop.sync.notifications import Notifier
from interop.sync.payloads import Payloads, Transaction
from interop.sync.v2 import V2Messages


class ChannelDeliverer:
    """The dispatcher's Deliverer: one payload, through the partner's registered channel."""

    def __init__(
        self,
        payloads: Payloads,
        http: httpx.Client,
        identity: SyncIdentity | None,
        v2: V2Messages,
        notifier: Notifier,
        timeout: float,
    ) -> None:
        self._notifier = notifier
        self._payloads = payloads
        self._http = http
        self._identity = identity
        self._v2 = v2
        self._timeout = timeout
        self._auths: dict[tuple[str, str, str], BackendServicesAuth] = {}
        self._auths_lock = threading.Lock()  # a dispatcher delivers from several threads

    def deliver(self, row: OutboxRow, partner: PartnerRow) -> Receipt:
        """The payload, sent; disclosed (interop.sync.payloads.disclosing) once the partner
        answered it: with a receipt, or with a refusal of what it read."""
        with self._payloads.disclosing() as disclosed:
            try:
                receipt = self._send(row, partner)
            except PartnerRefused:
                disclosed()
                raise
            disclosed()
            return receipt

    def deliver_together(
        self, rows: Sequence[OutboxRow], partner: PartnerRow
    ) -> list[Receipt | Exception]:
        """Changes to one partner's FHIR server in one transaction, each row's outcome in
        order: a receipt, or the error `deliver` would have raised for it alone. A row the
        gate withholds, or that cannot share the transaction, is delivered on its own; a
        refused transaction is sent again row by row, so that one change the partner refuses
        holds back none of the others (each sending that reached the partner is disclosed)."""
        outcomes: list[Receipt | Exception | None] = [None] * len(rows)
        batch, members, disclosures = Transaction(), [], []
        requester = as_requester(partner)
        for index, row in enumerate(rows):
            if row.channel != partner.channel:
                outcomes[index] = PartnerRejected(_CHANNEL_CHANGED)
                continue
            with self._payloads.disclosing() as disclosed:
                try:
                    push = self._payloads.fhir_push(row, requester, partner.channel_address or "")
                except Exception as error:  # the row's own outcome, as in `deliver`
                    outcomes[index] = error
                    continue
            if not push.alone and batch.add(push):
                members.append(index)
                disclosures.append(disclosed)
        for index, outcome in enumerate(self._sent_together(batch, members, disclosures, partner)):
            outcomes[members[index]] = outcome
        return [
            self._alone(row, partner) if outcome is None else outcome
            for row, outcome in zip(rows, outcomes, strict=True)
        ]

    def _sent_together(
        self,
        batch: Transaction,
        members: list[int],
        disclosures: list[Callable[[], None]],
        partner: PartnerRow,
    ) -> list[Receipt | Exception | None]:
        """The batch's outcomes, one per member; None where the member goes again alone."""
        if not members:
            return []
        try:
            receipts = self.fhir_channel(partner).deliver_each(batch.bundle())
        except PartnerRefused:
            for disclosed in disclosures:
                disclosed()
            return [None] * len(members)
        except (PartnerUnavailable, PartnerRejected) as failed:
            return [failed] * len(members)
        for disclosed in disclosures:
            disclosed()
        return [receipts[first] for first in batch.firsts]

    def _alone(self, row: OutboxRow, partner: PartnerRow) -> Receipt | Exception:
        try:
            return self.deliver(row, partner)
        except Exception as error:
            return error

    def _send(self, row: OutboxRow, partner: PartnerRow) -> Receipt:
        requester = as_requester(partner)
        if row.channel == REST_HOOK:
            return self._notifier.deliver(row, partner, requester)
        if row.channel != partner.channel:  # the event was chosen for the channel then
            raise PartnerRejected(_CHANNEL_CHANGED)
        address = partner.channel_address or ""
        kind = ChannelKind(partner.channel)
        if kind is ChannelKind.FHIR:
            bundle = self._payloads.fhir_transaction(row, requester, address)
            return self.fhir_channel(partner).deliver(bundle)
        if kind is ChannelKind.CCDA_HTTP:
            document = self._payloads.document(row, requester)
            return HttpDropChannel(address, self._http, self._auth(partner)).deliver(document)
        if kind is ChannelKind.CCDA_DIRECTORY:
            return DirectoryChannel(Path(address)).deliver(self._payloads.document(row, requester))
        if kind is ChannelKind.HL7V2_MLLP:
            message = self._v2.message(row, requester)
            return self._v2.channel(address, self._timeout).deliver(message)
        raise PartnerRejected(f"the partner's channel {partner.channel!r} cannot be delivered to")

    def fhir_channel(self, partner: PartnerRow) -> FhirPartnerChannel:
        """The partner's FHIR server, with its token cache (the poller reads through it too)."""
        return FhirPartnerChannel(partner.channel_address or "", self._http, self._auth(partner))

    def _auth(self, partner: PartnerRow) -> BackendServicesAuth | None:
        """One token cache per registration at a partner, kept across deliveries."""
        token_url, client_id = partner.channel_token_url, partner.channel_client_id
        if token_url is None or client_id is None:
            return None
        if self._identity is None:
            raise PartnerRejected(
                "the partner needs signed client assertions and SYNC_SIGNING_KEY_FILE is not set"
            )
        key = (partner.client_id, token_url, client_id)
        with self._auths_lock:
            if key not in self._auths:
                config = _push_config(self._identity, token_url, client_id)
                self._auths[key] = BackendServicesAuth(config, self._http)
            return self._auths[key]


def _push_config(identity: SyncIdentity, token_url: str, client_id: str) -> BackendServicesConfig:
    return BackendServicesConfig(
        token_url=token_url,
        client_id=client_id,
        private_key_pem=identity.private_key_pem,
        kid=identity.kid,
        alg=identity.alg,
        scope=_PUSH_SCOPES,
        purposes=_PURPOSES,
    )


_CHANNEL_CHANGED = "the partner's channel changed since this was queued"

_PUSH_SCOPES = (
    "system/Patient.cru system/ServiceRequest.cru system/Task.crus system/Subscription.cr"
)
"""Pushing referrals and their client (conditional updates), reading Tasks back, subscribing."""


_PURPOSES = ("TREAT",)
"""Referrals are made, pushed and read back for treatment, here and at the partner."""


def as_requester(partner: PartnerRow) -> Requester:
    return Requester(
        client_id=partner.client_id,
        organization=f"Organization/{partner.organization_id}",
        scopes=parse_scopes(partner.scopes),
        purposes=_PURPOSES,
        emergency=None,
        part2_program=partner.part2_program,
        covered_entity=partner.covered_entity,
        first_party=partner.first_party,
    )
