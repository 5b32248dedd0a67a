"""Compliance staff's API: the disclosure log as AuditEvents, its verification, accountings."""
