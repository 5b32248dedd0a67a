"""HL7 v2 inbound: REF^I12 and ADT^A03 in ER7, over MLLP or from files, answered with ACKs.

    er7        sans-I/O ER7 parsing and encoding (delimiters, escapes, batches)
    messages   read_message / read_file: typed Referral and Discharge, or the problems found
    ack        ACK^<trigger> with MSA and ERR (table 0357), and AR for unreadable input
    mllp       MLLP framing (sans-I/O decoder) and the asyncio listener serve_mllp
    errors     Problem, Location (ERR-2), ErrorCode (table 0357), AckCode, Hl7ParseError

Typical use by the service: `inbound = read_message(payload)`; store `inbound.raw` with its
problems when `not inbound.accepted`; answer `acknowledge(inbound, control_id=..., at=...)`.
"""

from adapters.hl7v2.ack import Responder, acknowledge, build_ack, encode_ack, refuse
from adapters.hl7v2.errors import AckCode, ErrorCode, Hl7ParseError, Location, Problem, Severity
from adapters.hl7v2.messages import (
    Discharge,
    FileRead,
    Inbound,
    Referral,
    read_file,
    read_message,
)
from adapters.hl7v2.mllp import MllpDecoder, MllpServer, MllpStats, frame, serve_mllp

__all__ = [
    "AckCode",
    "Discharge",
    "ErrorCode",
    "FileRead",
    "Hl7ParseError",
    "Inbound",
    "Location",
    "MllpDecoder",
    "MllpServer",
    "MllpStats",
    "Problem",
    "Referral",
    "Responder",
    "Severity",
    "acknowledge",
    "build_ack",
    "encode_ack",
    "frame",
    "read_file",
    "read_message",
    "refuse",
    "serve_mllp",
]
