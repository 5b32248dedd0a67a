"""Persistence: SQLModel tables, repositories (flush, never commit) and migrations."""
