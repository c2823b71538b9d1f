"""Reading the top-level box structure of a fragmented MP4, to cut a crashed file back to sense.

A segment written with ``empty_moov`` is ``ftyp``, ``moov`` (no samples), then one ``moof`` +
``mdat`` pair per fragment, and ``mfra`` when it was closed cleanly.  A writer killed mid-way
leaves a file whose last box is cut short (or a ``moof`` without its ``mdat``); everything before
that is playable.  ``scan_fragments`` finds where the last complete fragment ends by reading only
box headers (8 or 16 bytes each), so it costs a few hundred reads for an hour-long file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

BOX_HEADER_BYTES: Final = 8
LARGE_SIZE_BYTES: Final = 8
# Boxes that may sit between or after fragments without being part of one.
STANDALONE_BOX_TYPES: Final = frozenset(
    {"free", "skip", "sidx", "styp", "prft", "emsg", "mfra", "uuid", "meta"}
)


@dataclass(frozen=True, slots=True)
class Box:
    """One top-level box: its four-character type, where it starts and its total size."""

    type: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class FragmentScan:
    """What the box walk found: how many bytes are worth keeping and why the rest is not."""

    file_size: int
    playable_bytes: int
    has_header: bool
    fragments: int
    problem: str = ""

    @property
    def needs_trim(self) -> bool:
        return self.playable_bytes < self.file_size

    @property
    def trailing_bytes(self) -> int:
        return self.file_size - self.playable_bytes


def read_box(file: BinaryIO, offset: int, file_size: int) -> Box | str:
    """The box at ``offset``, or a description of why there is no complete one there."""
    file.seek(offset)
    header = file.read(BOX_HEADER_BYTES)
    if len(header) < BOX_HEADER_BYTES:
        return "box header cut short"
    size, raw_type = struct.unpack(">I4s", header)
    box_type = raw_type.decode("latin-1")
    if size == 1:
        large = file.read(LARGE_SIZE_BYTES)
        if len(large) < LARGE_SIZE_BYTES:
            return f"{box_type} large size cut short"
        (size,) = struct.unpack(">Q", large)
    elif size == 0:
        size = file_size - offset  # "extends to the end of the file"
    if size < BOX_HEADER_BYTES:
        return f"{box_type} box with impossible size {size}"
    if offset + size > file_size:
        return f"{box_type} box cut short ({file_size - offset} of {size} bytes)"
    return Box(box_type, offset, size)


def scan_fragments(path: Path) -> FragmentScan:
    """Walk the top-level boxes and find the end of the last complete ``moof`` + ``mdat`` pair.

    Bytes after that point are kept only if they are whole standalone boxes (``mfra`` and the
    like) following a complete fragment; a ``moof`` whose ``mdat`` never arrived, a box cut short
    or an unknown box type ends the playable part.
    """
    with path.open("rb") as file:
        file_size = file.seek(0, 2)
        offset = playable = fragments = 0
        seen_ftyp = seen_moov = False
        pending_moof: Box | None = None
        problem = ""
        while offset < file_size:
            box = read_box(file, offset, file_size)
            if isinstance(box, str):
                problem = box
                break
            problem = _misplaced(box, seen_ftyp, seen_moov, pending_moof)
            if problem:
                break
            if box.type == "ftyp":
                seen_ftyp = True
            elif box.type == "moov":
                seen_moov = True
                playable = box.end
            elif box.type == "moof":
                pending_moof = box
            elif box.type == "mdat":
                pending_moof = None
                fragments += 1
                playable = box.end
            elif pending_moof is None:
                playable = box.end
            offset = box.end
        if pending_moof is not None and not problem:
            problem = "moof without its mdat"
    return FragmentScan(file_size, playable, seen_ftyp and seen_moov, fragments, problem)


def _misplaced(box: Box, seen_ftyp: bool, seen_moov: bool, pending_moof: Box | None) -> str:
    """Why ``box`` cannot come next in a fragmented MP4 we wrote ("" when it can)."""
    if not seen_ftyp and box.type != "ftyp":
        return f"file starts with {box.type!r}, not ftyp"
    if box.type in ("ftyp", "moov"):
        return f"second {box.type}" if (seen_moov or (box.type == "ftyp" and seen_ftyp)) else ""
    if not seen_moov:
        return f"{box.type} before moov"
    if box.type == "moof":
        return "moof without its mdat" if pending_moof is not None else ""
    if box.type == "mdat":
        return "" if pending_moof is not None else "mdat without a moof"
    if pending_moof is not None:
        return f"{box.type} between moof and mdat"
    if box.type not in STANDALONE_BOX_TYPES:
        return f"unexpected {box.type!r} box"
    return ""


__all__ = ["Box", "FragmentScan", "read_box", "scan_fragments"]
