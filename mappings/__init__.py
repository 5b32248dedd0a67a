"""Pure translation between case-management concepts and FHIR R4, with no I/O."""
