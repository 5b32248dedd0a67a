"""HL7 v2 both ways: REF^I12 and ADT^A03 in, referrals and their answers out, over MLLP or files.

    er7        sans-I/O ER7 parsing and encoding (delimiters, escapes, batches)
    messages   read_message / read_file: typed Referral and Discharge, or the problems found
    ack        ACK^<trigger> with MSA and ERR (table 0357), in original mode (AA, AE, AR) or
               enhanced mode (MSH-15/16: CA, CE, CR, then AA, AE, AR); none for an ACK
    mllp       MLLP framing (sans-I/O decoder) and the asyncio listener serve_mllp
    outbound   write_referral (REF^I12), write_cancellation (REF^I14), write_return (RRI^I12):
               v2.5.1 ER7 bytes from typed values, keyed for the partner by RF1-6, with the
               42 CFR Part 2 marking (MSH-8, an NTE) when they disclose Part 2 data
    client     MllpChannel: deliver one message over MLLP, its ACK judged into a Receipt,
               PartnerRejected (AE/AR) or PartnerUnavailable (retry)
    errors     Problem, Location (ERR-2), ErrorCode (table 0357), AckCode, Hl7ParseError

Typical use by the service, inbound: `inbound = read_message(payload)`; store `inbound.raw` with
its problems when `not inbound.accepted`; answer with what `acknowledgments(inbound.header,
Outcome(...), new_control_id=..., at=...)` returns once the outcome is committed (none, one or
two ACKs), or `acknowledge(inbound, control_id=..., at=...)` where there is no link to answer on.
Outbound: `channel.deliver(write_referral(referral, envelope))`, with a new envelope (MSH-10)
per message and the same one for a resend of it.
"""

from adapters.hl7v2.ack import (
    Condition,
    Outcome,
    Responder,
    acknowledge,
    acknowledge_batch,
    acknowledgments,
    build_ack,
    encode_ack,
    is_acknowledgment,
    refuse,
)
from adapters.hl7v2.client import MllpChannel
from adapters.hl7v2.errors import AckCode, ErrorCode, Hl7ParseError, Location, Problem, Severity
from adapters.hl7v2.messages import (
    Discharge,
    EntityIdentifier,
    FileRead,
    HierarchicDesignator,
    Identifier,
    Inbound,
    PersonName,
    Referral,
    is_batch,
    read_file,
    read_message,
)
from adapters.hl7v2.mllp import MllpDecoder, MllpServer, MllpStats, frame, serve_mllp
from adapters.hl7v2.outbound import (
    PART2_LABELS_PREFIX,
    PART2_NOTE_TYPE,
    Code,
    Envelope,
    OutgoingPatient,
    OutgoingReferral,
    Part2Marking,
    Party,
    Priority,
    ReferralStatus,
    ReturnedReferral,
    Sex,
    write_cancellation,
    write_referral,
    write_return,
)

__all__ = [
    "PART2_LABELS_PREFIX",
    "PART2_NOTE_TYPE",
    "AckCode",
    "Code",
    "Condition",
    "Discharge",
    "EntityIdentifier",
    "Envelope",
    "ErrorCode",
    "FileRead",
    "HierarchicDesignator",
    "Hl7ParseError",
    "Identifier",
    "Inbound",
    "Location",
    "MllpChannel",
    "MllpDecoder",
    "MllpServer",
    "MllpStats",
    "Outcome",
    "OutgoingPatient",
    "OutgoingReferral",
    "Part2Marking",
    "Party",
    "PersonName",
    "Priority",
    "Problem",
    "Referral",
    "ReferralStatus",
    "Responder",
    "ReturnedReferral",
    "Severity",
    "Sex",
    "acknowledge",
    "acknowledge_batch",
    "acknowledgments",
    "build_ack",
    "encode_ack",
    "frame",
    "is_acknowledgment",
    "is_batch",
    "read_file",
    "read_message",
    "refuse",
    "serve_mllp",
    "write_cancellation",
    "write_referral",
    "write_return",
]
