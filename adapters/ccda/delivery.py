"""Delivery of written C-CDA documents: POSTed to a partner's HTTP drop, or left in a directory
the partner picks up from (a local folder, or an SFTP or SMB share mounted here).

`HttpDropChannel` sends Content-Type application/xml. No HL7 type is in common use for CDA over
HTTP: `application/hl7-cda+xml` was never registered, and `application/cda+xml`, registered at
IANA by HL7 in 2021, is still rarely accepted by receivers, while the C-CDA IG's own Binary
examples, IHE XDS ("text/xml") and our own export routes all say XML. No charset parameter: the
document's XML declaration names its encoding (RFC 7303 §4.3). The document's name travels in
Content-Disposition (RFC 6266) and in Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-
header, a quoted string), so a partner can tell a resend from a new document.

    200, 201, 204 ...   ACKNOWLEDGED, reference = the Location header or ""
    202                 SENT (taken for later processing), reference = the Location header or ""
    anything else       as adapters.fhir_http.exchange (3xx refused, 4xx rejected, 5xx retry)

`DirectoryChannel` writes each document atomically, so a pickup process never sees half a file:
into a temporary file in the same directory whose name starts with a dot and ends in ".part"
(pickup patterns skip both), synced to disk, then renamed over the final name (rename(2) is
atomic within one file system); the directory is synced so the rename survives a crash. Writing
the same name again replaces the file, so a resend is harmless. The file mode is 0o640: the
partner's pickup process usually runs as another user, and reads through the group (give the
directory that group, with the setgid bit so new files inherit it); nobody else may read it.
A missing directory is never created: the share may be unmounted, and creating its mount point
would leave patient data on the local disk.
"""

import errno
import os
import re
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from adapters.errors import PartnerUnavailable
from adapters.fhir_http import BackendServicesAuth
from adapters.fhir_http.exchange import failure, post, shorten
from adapters.ports import Delivery, Receipt

__all__ = ["DirectoryChannel", "HttpDropChannel", "OutgoingDocumentFile"]

_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_FILE_MODE: Final = 0o640
_ACCEPT: Final = "application/fhir+json, application/json;q=0.9, */*;q=0.1"


@dataclass(frozen=True, slots=True)
class OutgoingDocumentFile:
    """A written document and the file name it travels under ("referral-note-<id>.xml").

    The name is letters, digits, ".", "_" and "-", starting with a letter or digit and at most
    255 characters: no path separator, nothing hidden, the same on every file system and safe
    in an HTTP header.
    """

    name: str
    content: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _SAFE_NAME.fullmatch(self.name):
            raise ValueError(f"unsafe document file name {self.name!r}")


class HttpDropChannel:
    """A partner's HTTP endpoint that takes C-CDA documents, one POST each."""

    def __init__(self, url: str, client: httpx.Client, auth: BackendServicesAuth | None) -> None:
        self._url = url
        self._client = client
        self._auth = auth

    def deliver(self, document: OutgoingDocumentFile) -> Receipt:
        """POST the document; raise PartnerUnavailable or PartnerRejected."""
        headers = {
            "Content-Type": "application/xml",
            "Content-Disposition": f'attachment; filename="{document.name}"',
            "Idempotency-Key": f'"{document.name}"',
            "Accept": _ACCEPT,
        }
        answer = post(
            self._client, self._url, headers=headers, content=document.content, auth=self._auth
        )
        if not answer.succeeded:
            raise failure(answer)
        state = Delivery.SENT if answer.status == 202 else Delivery.ACKNOWLEDGED
        return Receipt(state, shorten(answer.headers.get("location")) or "")


class DirectoryChannel:
    """A directory a partner's pickup process reads; see the module docstring for how."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def deliver(self, document: OutgoingDocumentFile) -> Receipt:
        """Write the document atomically; raise PartnerUnavailable when the directory fails."""
        try:
            _write_atomically(self._directory, document)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise PartnerUnavailable(f"cannot write to the drop directory: {reason}") from error
        return Receipt(Delivery.SENT, document.name)


def _write_atomically(directory: Path, document: OutgoingDocumentFile) -> None:
    temporary = directory / f".{document.name}.{uuid.uuid4().hex}.part"
    try:
        # Created readable by us alone, then opened to the group: the umask has no say, and no
        # one else can open the file before its mode is the intended one.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), _FILE_MODE)
            file.write(document.content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, directory / document.name)
    finally:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)
    sync_directory(directory)


def sync_directory(directory: Path) -> None:
    """fsync(2) the directory so a rename is on disk; some network file systems cannot sync a
    directory (EINVAL), and there the rename stands as the server keeps it."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)
