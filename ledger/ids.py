"""Name-based ids: `uuid.uuid5`'s UUIDs, computed directly, for the ids made per command.

`uuid.uuid5` imports hashlib's sha1 on each call and builds the UUID through its checks
(~6-8 µs); the same SHA-1 digest with the version and variant bits set costs about half.
tests/unit/test_ids.py compares both with `uuid.uuid5` over many names.
"""

from __future__ import annotations

from hashlib import sha1
from uuid import UUID

# The version nibble (time_hi) and the variant's two top bits (clock_seq_hi), as uuid5 sets them.
_CLEARED = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_5 = (0x5000 << 64) | (0x8000 << 48)
# The hex digit after the third hyphen: the digest's, with its two top bits set to 10 (RFC 4122).
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 0b11] for digit in "0123456789abcdef"}


def name_uuid(namespace: UUID, name: str) -> UUID:
    """`uuid.uuid5(namespace, name)`."""
    digest = sha1(namespace.bytes + name.encode()).digest()
    return UUID(int=int.from_bytes(digest[:16]) & _CLEARED | _VERSION_5)


def name_uuid_text(namespace: UUID, name: str) -> str:
    """`str(uuid.uuid5(namespace, name))`, formatted from the digest without a UUID object."""
    h = sha1(namespace.bytes + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"
