"""The staff console: server-rendered pages for compliance officers and case managers."""
