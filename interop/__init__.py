"""Recovery Interop: FHIR R4 interoperability for addiction-treatment case management."""
