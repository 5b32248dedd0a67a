"""Consent forms for compliance staff: approve a form once with the §2.31 statements it
contains (PART2.md C9), and list the approvals. The API twin of `interop forms`."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from interop.api.security import requires_role
from interop.services.forms import ApprovedForm, ConsentForms
from interop.services.staff import Role, StaffSession

router = APIRouter(prefix="/admin", tags=["Administration"])

ComplianceDep = Annotated[
    StaffSession, Depends(requires_role(Role.COMPLIANCE_OFFICER, Role.ADMINISTRATOR))
]
Statement = Literal["right-to-revoke", "redisclosure-risk", "refusal-consequences"]


class FormApproval(BaseModel):
    """A form, named as consents name it (policy.uri, attachment URL, sourceReference), and
    the statements staff found in it."""

    form: str = Field(min_length=1, max_length=1024)
    title: str = Field(default="", max_length=400)
    statements: list[Statement] = Field(max_length=3)


def _forms(request: Request) -> ConsentForms:
    service: ConsentForms = request.app.state.consent_forms
    return service


FormsDep = Annotated[ConsentForms, Depends(_forms)]


@router.get("/consent-forms", operation_id="list_consent_forms")
def list_consent_forms(forms: FormsDep, _: ComplianceDep) -> list[ApprovedForm]:
    """Every approved consent form and the statements it contains."""
    return forms.list()


@router.post(
    "/consent-forms",
    operation_id="approve_consent_form",
    status_code=201,
    responses={200: {"description": "The form's earlier approval, replaced by this one"}},
)
def approve_consent_form(
    approval: FormApproval, forms: FormsDep, staff: ComplianceDep, response: Response
) -> ApprovedForm:
    """Approve a consent form; consents signed on it then have its statements. 201 when
    this makes the form's approval; 200 when it replaces the one the form had (the
    statements then are those given here)."""
    replacing = forms.is_approved(approval.form)
    approved = forms.approve(
        approval.form, approval.title, approval.statements, staff.principal.username
    )
    if replacing:
        response.status_code = 200
    return approved
