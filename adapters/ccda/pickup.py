"""Picking up C-CDA documents a partner leaves in an inbox folder (the `ccda-directory` channel
read the other way; `adapters.ccda.delivery` writes the outbound side).

A file is complete when its name is final: senders write a temporary name and rename it over
the final one (ours starts with a dot and ends in ".part", as `DirectoryChannel` does; Direct
HISPs and SFTP servers use the same convention), so hidden files, ".part", ".tmp" and ".filepart"
names are left alone, as are directories and anything that is not a regular file (a symbolic
link could point anywhere on this machine). Each file taken is then moved into `processed/` or
`held/` beside it with rename(2), atomic within the folder's file system, and the folder is
synced so the move survives a crash. A file that would overwrite one already there gets a
unique suffix instead: an earlier document is never lost to a resend of the same name.
"""

import errno
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from adapters.ccda.delivery import sync_directory

__all__ = ["DirectoryPickup", "Outcome", "PickedFile"]

_PARTIAL_SUFFIXES: Final = (".part", ".tmp", ".filepart", ".partial")


class Outcome(StrEnum):
    """Which subfolder a taken file ends in."""

    PROCESSED = "processed"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class PickedFile:
    """A complete file in the inbox, with its bytes as read."""

    path: Path
    content: bytes


class DirectoryPickup:
    """One inbox folder; `processed/` and `held/` are created inside it when missing (the folder
    itself never is: a missing share must not become a local folder)."""

    def __init__(self, inbox: Path, max_bytes: int) -> None:
        self._inbox = inbox
        self._max_bytes = max_bytes

    def complete_files(self) -> Iterator[PickedFile]:
        """Each complete file, oldest first, read up to one byte past `max_bytes` (so that a
        reader with that limit refuses it as too large without this reading more)."""
        if not self._inbox.is_dir():
            raise FileNotFoundError(
                errno.ENOENT, "the inbox folder does not exist", str(self._inbox)
            )
        candidates = []
        with os.scandir(self._inbox) as entries:
            for entry in entries:
                if _is_partial(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                candidates.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
        for _mtime, name in sorted(candidates):
            path = self._inbox / name
            picked = self._read(path)
            if picked is not None:
                yield picked

    def move(self, path: Path, outcome: Outcome) -> Path:
        """Move a taken file into `processed/` or `held/`; the path it now has."""
        folder = self._inbox / outcome.value
        folder.mkdir(mode=0o750, exist_ok=True)
        target = folder / path.name
        if target.exists():
            target = folder / f"{path.name}.{uuid.uuid4().hex[:12]}"
        os.replace(path, target)
        sync_directory(folder)
        sync_directory(self._inbox)
        return target

    def _read(self, path: Path) -> PickedFile | None:
        """The file's bytes, opened without following a link; None when it went away."""
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        with os.fdopen(descriptor, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            return PickedFile(path, file.read(self._max_bytes + 1))


def _is_partial(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(_PARTIAL_SUFFIXES)
