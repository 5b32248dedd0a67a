"""SMART discovery, the token endpoint, and staff sign-in."""
