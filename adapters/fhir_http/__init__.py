"""Delivery to partners' FHIR servers over HTTP, with SMART Backend Services tokens.

    auth       BackendServicesAuth: client_credentials with a private_key_jwt assertion, cached
    client     FhirPartnerChannel: a transaction Bundle POSTed to the partner's base URL
    notify     RestHookChannel: Subscription notifications POSTed to a partner's endpoint
    exchange   one request and what its answer means, shared with adapters.ccda.delivery

The caller (the service's sync dispatcher) builds the httpx.Client, with its timeouts and TLS
settings, and the typed configuration; nothing here reads settings or the environment.
"""

from adapters.fhir_http.auth import BackendServicesAuth, BackendServicesConfig
from adapters.fhir_http.client import FhirPartnerChannel
from adapters.fhir_http.exchange import MAX_ANSWER_BYTES
from adapters.fhir_http.notify import RestHookChannel

__all__ = [
    "MAX_ANSWER_BYTES",
    "BackendServicesAuth",
    "BackendServicesConfig",
    "FhirPartnerChannel",
    "RestHookChannel",
]
