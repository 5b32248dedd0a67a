"""Decisions per second of `consent.decide` on one core, with 20 consents on file for the patient.

Run: .venv/bin/python bench/consent_engine.py [--seconds 3]

The consents are read from FHIR JSON once, as the gate does (they are cached per patient); the
timed loop is `decide` alone, over a mix of requests that permit (general, TPO, nested trees),
deny (unnamed recipients, withheld classes, expired and revoked consents) and break the glass.
Never asserted in the test suite: the figure depends on the machine.
"""

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consent import (
    ConsentDirective,
    DataItem,
    DisclosureRequest,
    decide,
)
from consent import vocabulary as v
from mappings.consent import directive_from_fhir
from tests.consent import (
    CLINIC,
    EMERGENCY_FACTS,
    PAYER,
    PROGRAM,
    STRANGER,
    actor,
    consent,
    item,
    label,
    permit,
    provision,
    request,
    requester,
    restriction,
    tpo_consent,
)

AS_OF = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


def consents_on_file() -> list[ConsentDirective]:
    """Twenty consents of one patient: the shapes a real record accumulates over years."""
    resources = [tpo_consent()]
    for number in range(8):
        recipient = f"Organization/provider-{number}"
        resources.append(
            consent(
                f"general-{number}",
                root=permit(
                    actors=[actor(recipient)],
                    purposes=["TREAT", "PATRQT"],
                    labels=[label(v.SUD)],
                    children=[provision("deny", classes=["DocumentReference"])],
                ),
            )
        )
    for number in range(4):
        resources.append(consent(f"expired-{number}", expires="2024-12-31"))
    for number in range(3):
        resources.append({**consent(f"revoked-{number}"), "status": "inactive"})
    resources.append(restriction(actors=[actor(STRANGER)]))
    resources.append(
        consent(
            "nested",
            root=provision(
                "deny",
                children=[
                    provision(
                        None,
                        actors=[actor(CLINIC)],
                        purposes=["TREAT"],
                        children=[
                            provision(
                                "permit",
                                labels=[label(v.SUD)],
                                children=[
                                    provision("deny", data_period=("2019-01-01", "2019-12-31"))
                                ],
                            )
                        ],
                    )
                ],
            ),
        )
    )
    resources.append(
        consent(
            "notes",
            kind="counseling-notes",
            root=permit(labels=[label(v.COUNSELING_NOTE)]),
        )
    )
    resources.append(consent("care-plan", root=permit(labels=[], classes=["CarePlan"])))
    assert len(resources) == 20
    return [directive_from_fhir(resource) for resource in resources]


def requests() -> list[DisclosureRequest]:
    """A mix of permitted, denied and emergency requests for the same patient."""
    medication = item("MedicationStatement", reference="MedicationStatement/m1")
    note: DataItem = item(
        "DocumentReference",
        reference="DocumentReference/n1",
        labels=((v.ACT_CODE, v.COUNSELING_NOTE),),
        counseling_note=True,
    )
    return [
        request(),
        request(data=medication),
        request(who=requester(PAYER), purposes=("HPAYMT",)),
        request(who=requester("Organization/provider-3", covered_entity=False)),
        request(who=requester(STRANGER, covered_entity=False)),
        request(data=item("CarePlan", reference="CarePlan/p1")),
        request(data=note),
        request(purposes=("HLEGAL",)),
        request(
            who=requester(medical_personnel=True),
            purposes=("BTG",),
            emergency=EMERGENCY_FACTS,
            data=item(source=PROGRAM),
        ),
        request(data=item(labels=(), part2=False)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    seconds = parser.parse_args().seconds
    directives = consents_on_file()
    batch = requests()
    outcomes = [decide(req, directives, AS_OF).outcome.value for req in batch]
    decisions = 0
    started = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for req in batch:
            decide(req, directives, AS_OF)
        decisions += len(batch)
        elapsed = time.perf_counter() - started
    print(f"consents on file: {len(directives)}; request mix outcomes: {', '.join(outcomes)}")
    print(f"{decisions / elapsed:,.0f} decisions/s ({elapsed / decisions * 1e6:.1f} µs each)")


if __name__ == "__main__":
    main()
