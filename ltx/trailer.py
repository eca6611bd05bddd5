"""The 16-byte trailer: post-apply checksum and file checksum."""

from __future__ import annotations

import attrs

from ltx.errors import TrailerError, TruncatedError
from ltx.header import Header
from ltx.layout import TRAILER_FIELDS, TRAILER_SIZE, struct_of
from ltx.pos import CHECKSUM_FLAG

_TRAILER = struct_of(TRAILER_FIELDS)

DELETION_POST_APPLY = CHECKSUM_FLAG
"""The post-apply checksum a file with Commit = 0 must carry (an empty database)."""


@attrs.frozen
class Trailer:
    post_apply_checksum: int
    file_checksum: int

    def validate(self, header: Header) -> None:
        """Raise :class:`TrailerError` if the trailer breaks a rule for files with ``header``."""
        if header.no_checksum:
            if self.post_apply_checksum != 0:
                raise TrailerError("a NoChecksum file must have no post-apply checksum", txid=header.min_txid)
        elif self.post_apply_checksum == 0:
            raise TrailerError("post-apply checksum required", txid=header.min_txid)
        elif not self.post_apply_checksum & CHECKSUM_FLAG:
            raise TrailerError("post-apply checksum lacks its flag bit", txid=header.min_txid)
        if self.file_checksum == 0:
            raise TrailerError("file checksum required", txid=header.min_txid)
        if not self.file_checksum & CHECKSUM_FLAG:
            raise TrailerError("file checksum lacks its flag bit", txid=header.min_txid)

    def to_bytes(self) -> bytes:
        return _TRAILER.pack(self.post_apply_checksum, self.file_checksum)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> Trailer:
        if len(buf) < TRAILER_SIZE:
            raise TruncatedError(f"trailer is {len(buf)} bytes, need {TRAILER_SIZE}")
        post, file = _TRAILER.unpack_from(buf)
        return cls(post, file)
