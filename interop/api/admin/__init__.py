"""Administrator-only API: partner registrations."""
