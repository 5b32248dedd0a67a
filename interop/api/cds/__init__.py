"""CDS Hooks: the consent decision service."""
