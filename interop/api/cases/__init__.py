"""The case-management API (native JSON) for case managers' tools."""
