"""The FHIR R4 RESTful API."""
