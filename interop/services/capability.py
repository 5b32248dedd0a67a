"""The CapabilityStatement: what this server does, and nothing it does not (R4 §3.1.0.13)."""

from typing import Any

from interop.store.search_params import SEARCH_PARAMS, ParamType, SearchParam
from mappings import subscription
from mappings.fhir import FHIR_VERSION

_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
_BULK = "http://hl7.org/fhir/uv/bulkdata"
_TYPE_OPERATIONS: dict[str, list[dict[str, str]]] = {
    "Patient": [
        {"name": "export", "definition": f"{_BULK}/OperationDefinition/patient-export"},
        {
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        },
    ],
    "Group": [{"name": "export", "definition": f"{_BULK}/OperationDefinition/group-export"}],
    "Subscription": [
        {
            "name": "status",
            "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
            "backport-subscription-status",
        }
    ],
}
"""Bulk Data Access IG v2.0.0 at all three levels, R4 Patient $everything, and the
Subscriptions Backport IG's $status."""
_VALIDATE = {
    "name": "validate",
    "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
}
"""POST /fhir/{type}/$validate, on every type."""
_COMMON_PARAMS = (
    {
        "name": "_id",
        "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
        "type": "token",
    },
    {
        "name": "_lastUpdated",
        "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
        "type": "date",
    },
)


def capability_statement(*, software_version: str, released: str) -> dict[str, Any]:
    """A CapabilityStatement of kind instance; the route fills in the base URL it serves."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": released,
        "publisher": "Recovery Interop",
        "kind": "instance",
        "instantiates": [f"{_BULK}/CapabilityStatement/bulk-data"],
        "software": {"name": "Recovery Interop", "version": software_version},
        "implementation": {
            "description": "Recovery Interop FHIR R4 server",
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/fhir+xml"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    _resource(kind, params) for kind, params in sorted(SEARCH_PARAMS.items())
                ],
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                ],
                "operation": [
                    {"name": "export", "definition": f"{_BULK}/OperationDefinition/export"},
                ],
            }
        ],
    }


_SUPPORTED_PROFILES = {"Subscription": [subscription.PROFILE]}
"""Profiles beyond the base: Subscriptions are topic-based, in the Backport IG's R4 form."""


def _resource(resource_type: str, params: tuple[SearchParam, ...]) -> dict[str, Any]:
    references = [p for p in params if p.type is ParamType.REFERENCE]
    incoming = sorted(
        f"{source}:{p.name}"
        for source, source_params in SEARCH_PARAMS.items()
        for p in source_params
        if p.type is ParamType.REFERENCE and (not p.targets or resource_type in p.targets)
    )
    profiles = _SUPPORTED_PROFILES.get(resource_type)
    operations = [_VALIDATE, *_TYPE_OPERATIONS.get(resource_type, ())]
    return {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        **({"supportedProfile": profiles} if profiles else {}),
        "interaction": [{"code": code} for code in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "not-supported",
        "searchInclude": ["*"] + [f"{resource_type}:{p.name}" for p in references],
        "searchRevInclude": incoming,
        "searchParam": [
            *_COMMON_PARAMS,
            *({"name": p.name, "definition": p.definition, "type": p.type.value} for p in params),
        ],
        "operation": operations,
    }


def security(token_url: str) -> dict[str, Any]:
    """rest.security: every interaction needs a SMART Backend Services token (SMART App Launch
    v2 names the token endpoint in the oauth-uris extension, and the service as SMART-on-FHIR)."""
    return {
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": token_url}],
            }
        ],
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "SMART Backend Services: client_credentials with private_key_jwt",
            }
        ],
        "description": "A bearer access token from the token endpoint, for every interaction "
        "but this one; see .well-known/smart-configuration.",
    }
