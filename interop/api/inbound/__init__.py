"""Staff's view of HL7 v2 messages held because they could not be processed."""
