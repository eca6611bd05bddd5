"""TXIDs, checksums and positions, with their 16-hex text forms.

Inside the codec TXIDs and checksums are plain ``int`` (they are ``u64``
fields); these types give them their text form at the edges: file names, the
command line, JSON. Both print as exactly 16 lowercase hex digits and parse
only from exactly 16 hex digits (either case).
"""

from __future__ import annotations

import attrs

from ltx.errors import LTXError

CHECKSUM_FLAG = 1 << 63
"""Set on every non-zero checksum stored in a file; zero means "absent"."""

_U64 = (1 << 64) - 1


def _parse_hex16(text: str, what: str) -> int:
    if len(text) != 16:
        raise LTXError(f"invalid {what} format: {text!r} (want 16 hex digits)")
    try:
        return int(text, 16)
    except ValueError:
        raise LTXError(f"invalid {what} format: {text!r} (want 16 hex digits)") from None


def _check_u64(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= _U64:
        raise LTXError(f"{attribute.name} out of range for u64: {value}")


@attrs.frozen(order=True)
class TXID:
    """A transaction ID: in Litestream 0.5, one per sync that produced an L0 file."""

    value: int = attrs.field(validator=_check_u64)

    def __str__(self) -> str:
        return f"{self.value:016x}"

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    @classmethod
    def parse(cls, text: str) -> TXID:
        return cls(_parse_hex16(text, "txid"))


@attrs.frozen(order=True)
class Checksum:
    """A CRC-64 database or file checksum (bit 63 set when present)."""

    value: int = attrs.field(validator=_check_u64)

    def __str__(self) -> str:
        return f"{self.value:016x}"

    def __int__(self) -> int:
        return self.value

    @classmethod
    def parse(cls, text: str) -> Checksum:
        return cls(_parse_hex16(text, "checksum"))


@attrs.frozen(order=True)
class Pos:
    """A replication position: the last TXID applied and the checksum after it."""

    txid: TXID
    post_apply_checksum: Checksum

    def __str__(self) -> str:
        return f"{self.txid}/{self.post_apply_checksum}"

    @property
    def is_zero(self) -> bool:
        return self.txid.value == 0 and self.post_apply_checksum.value == 0

    @classmethod
    def parse(cls, text: str) -> Pos:
        if len(text) != 33 or text[16] != "/":
            raise LTXError(f"invalid pos format: {text!r} (want <txid16>/<checksum16>)")
        return cls(TXID.parse(text[:16]), Checksum.parse(text[17:]))
