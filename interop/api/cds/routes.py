"""CDS Hooks 2.0 discovery and the patient-consent-consult service."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from interop.api.security import RequesterDep
from interop.services.cds import DISCOVERY, SERVICE_ID, ConsentConsult
from interop.services.errors import Forbidden

router = APIRouter(prefix="/cds-services", tags=["CDS Hooks"])


def _consult(request: Request) -> ConsentConsult:
    service: ConsentConsult = request.app.state.consent_consult
    return service


@router.get("", operation_id="cds_discovery")
def discovery() -> dict[str, Any]:
    """CDS Hooks discovery: the services offered here."""
    return DISCOVERY


@router.post(f"/{SERVICE_ID}", operation_id="patient_consent_consult")
def patient_consent_consult(
    body: Annotated[dict[str, Any], Body()],
    requester: RequesterDep,
    consult: Annotated[ConsentConsult, Depends(_consult)],
) -> dict[str, Any]:
    """Ask the engine whether a patient's Part 2 records may go to an actor, for a purpose."""
    if not requester.may("Consent", "r"):
        raise Forbidden("the consent decision service needs a system/Consent.r scope")
    return consult.consult(body, requester)
