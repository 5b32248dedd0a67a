"""Compliance records: the hash-chained disclosure log, AuditEvents, accounting of disclosures."""
