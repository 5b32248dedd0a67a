"""Who is asking: SMART Backend Services tokens, scopes, staff accounts and roles."""
