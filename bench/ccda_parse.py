"""Time to read a C-CDA Transfer Summary: the largest one in the corpus and a synthetic ~100 KB
one. Target: under 20 ms each. Prints figures, asserts nothing.

    .venv/bin/python bench/ccda_parse.py [--corpus ../shared/corpora/ccda] [--runs 200]
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))  # the editable install may predate adapters/

from adapters.ccda import DocumentKind, read_document  # noqa: E402
from adapters.ccda.parser import parse_untrusted  # noqa: E402
from adapters.errors import MalformedDocument  # noqa: E402

TARGET_MS = 20.0
SYNTHETIC_BYTES = 100 * 1024

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="US"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.10.20.22.1.1" extension="2015-08-01"/>
  <templateId root="2.16.840.1.113883.10.20.22.1.13" extension="2015-08-01"/>
  <id root="2.16.840.1.113883.19.5" extension="bench-1"/>
  <code code="18761-7" codeSystem="2.16.840.1.113883.6.1" displayName="Transfer summary note"/>
  <title>Transfer Summary</title>
  <effectiveTime value="20240105103000-0500"/>
  <confidentialityCode code="R" codeSystem="2.16.840.1.113883.5.25"/>
  <recordTarget><patientRole>
    <id root="2.16.840.1.113883.4.1" extension="123-45-6789"/>
    <addr use="HP"><streetAddressLine>1 Main St</streetAddressLine><city>Portland</city>
      <state>OR</state><postalCode>97005</postalCode><country>US</country></addr>
    <telecom use="HP" value="tel:+1-555-555-0100"/>
    <patient><name use="L"><given>Ada</given><family>Lovelace</family></name>
      <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="19800101"/></patient>
  </patientRole></recordTarget>
  <author><time value="20240105"/><assignedAuthor><id root="2.16.840.1.113883.4.6" extension="1"/>
    <assignedPerson><name><given>Grace</given><family>Hopper</family></name></assignedPerson>
  </assignedAuthor></author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="2.16.840.1.113883.4.6" extension="2"/><name>Recovery Clinic</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <component><structuredBody>
"""
MEDICATION = """      <entry><substanceAdministration classCode="SBADM" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.16" extension="2014-06-09"/>
        <id root="1.2.3.4" extension="med-{n}"/>
        <text><reference value="#med{n}"/></text><statusCode code="active"/>
        <effectiveTime xsi:type="IVL_TS"><low value="20240101"/></effectiveTime>
        <effectiveTime xsi:type="PIVL_TS" operator="A"><period value="24" unit="h"/></effectiveTime>
        <routeCode code="C38288" codeSystem="2.16.840.1.113883.3.26.1.1" displayName="ORAL"/>
        <doseQuantity value="1"/>
        <consumable><manufacturedProduct classCode="MANU">
          <templateId root="2.16.840.1.113883.10.20.22.4.23" extension="2014-06-09"/>
          <manufacturedMaterial><code code="1010600" codeSystem="2.16.840.1.113883.6.88"
            displayName="buprenorphine 8 MG / naloxone 2 MG Sublingual Film"/>
          </manufacturedMaterial>
        </manufacturedProduct></consumable>
      </substanceAdministration></entry>
"""
PROBLEM = """      <entry><act classCode="ACT" moodCode="EVN">
        <templateId root="2.16.840.1.113883.10.20.22.4.3" extension="2015-08-01"/>
        <id root="1.2.3.5" extension="concern-{n}"/>
        <code code="CONC" codeSystem="2.16.840.1.113883.5.6"/><statusCode code="active"/>
        <effectiveTime><low value="20230101"/></effectiveTime>
        <entryRelationship typeCode="SUBJ"><observation classCode="OBS" moodCode="EVN">
          <templateId root="2.16.840.1.113883.10.20.22.4.4" extension="2015-08-01"/>
          <id root="1.2.3.6" extension="problem-{n}"/>
          <code code="55607006" codeSystem="2.16.840.1.113883.6.96" displayName="Problem"/>
          <statusCode code="completed"/><effectiveTime><low value="20230101"/></effectiveTime>
          <value xsi:type="CD" code="5602001" codeSystem="2.16.840.1.113883.6.96"
            displayName="Opioid abuse"/>
        </observation></entryRelationship>
      </act></entry>
"""


def synthetic_transfer_summary(size: int = SYNTHETIC_BYTES) -> bytes:
    """A Transfer Summary of about `size` bytes: medications and problems, with narrative."""
    count = 1
    while True:
        rows = "".join(
            f'<item ID="med{n}">Medication {n}, one film daily</item>' for n in range(count)
        )
        medications = "".join(MEDICATION.format(n=n) for n in range(count))
        problems = "".join(PROBLEM.format(n=n) for n in range(count))
        raw = (
            HEADER + '    <component><section><templateId root="2.16.840.1.113883.10.20.22.2.1.1"/>'
            '<code code="10160-0" codeSystem="2.16.840.1.113883.6.1"/><title>MEDICATIONS</title>'
            f"<text><list>{rows}</list></text>\n{medications}    </section></component>\n"
            '    <component><section><templateId root="2.16.840.1.113883.10.20.22.2.5.1"/>'
            '<code code="11450-4" codeSystem="2.16.840.1.113883.6.1"/><title>PROBLEMS</title>'
            f"<text>Problems</text>\n{problems}    </section></component>\n"
            "  </structuredBody></component>\n</ClinicalDocument>\n"
        ).encode()
        if len(raw) >= size:
            return raw
        count += 1


def largest_transfer_summary(corpus: Path) -> Path | None:
    found = []
    for path in corpus.rglob("*.xml"):
        raw = path.read_bytes()
        try:
            if read_document(raw).kind is DocumentKind.TRANSFER_SUMMARY:
                found.append((len(raw), path))
        except MalformedDocument:
            continue
    return max(found)[1] if found else None


def measure(action: Callable[[], object], runs: int) -> tuple[float, float, float]:
    for _ in range(min(20, runs)):
        action()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], timings[0]


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--corpus", type=Path, default=REPOSITORY.parent / "shared/corpora/ccda")
    arguments.add_argument("--runs", type=int, default=200)
    options = arguments.parse_args()

    documents: list[tuple[str, bytes]] = []
    largest = largest_transfer_summary(options.corpus) if options.corpus.is_dir() else None
    if largest is None:
        print(f"no Transfer Summary under {options.corpus}; synthetic document only")
    else:
        documents.append((str(largest.relative_to(options.corpus)), largest.read_bytes()))
    documents.append(("synthetic Transfer Summary", synthetic_transfer_summary()))

    print(f"{'document':<38} {'KB':>6} {'step':<14} {'median ms':>9} {'p95 ms':>8} {'min ms':>8}")
    for name, raw in documents:
        steps: list[tuple[str, Callable[[], object]]] = [
            ("parse only", partial(parse_untrusted, raw, max_bytes=len(raw), max_depth=256)),
            ("read_document", partial(read_document, raw)),
        ]
        for step, action in steps:
            median, p95, fastest = measure(action, options.runs)
            verdict = "" if step == "parse only" else ("  ok" if p95 < TARGET_MS else "  SLOW")
            print(
                f"{name:<38} {len(raw) / 1024:>6.0f} {step:<14} {median:>9.2f} {p95:>8.2f} "
                f"{fastest:>8.2f}{verdict}"
            )
    print(f"target: read_document p95 under {TARGET_MS:.0f} ms; {options.runs} runs each")


if __name__ == "__main__":
    main()
