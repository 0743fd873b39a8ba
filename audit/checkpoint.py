"""Checkpoints: signed heads of the history, in the C2SP tlog-checkpoint signed-note format.

A checkpoint names the size of the tree of batch heads and its root, plus the events it
covers, the last position, the time the last batch was recorded and that batch's head hash.
It is signed with Ed25519 (the `cryptography` library) as a C2SP signed note, so it can be
checked with any Ed25519 implementation, or with Go's golang.org/x/mod/sumdb/note.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.basics import DEFAULT_ORIGIN, CheckpointError
from infra.batch_heads import SealedHead

_ED25519 = b"\x01"  # the signed-note algorithm byte of Ed25519
_DASH = "\u2014"  # signature lines start with an em dash


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint states about the history."""

    origin: str
    tree_size: int
    root: bytes
    events_total: int
    last_position: int
    recorded_at: datetime
    head_hash: bytes

    def body(self) -> str:
        """The signed text: origin, size, root, then one extension line each."""
        return (
            f"{self.origin}\n{self.tree_size}\n{_b64(self.root)}\n"
            f"events {self.events_total}\nposition {self.last_position}\n"
            f"recorded_at {self.recorded_at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}\n"
            f"head {_b64(self.head_hash)}\n"
        )


def checkpoint_of(sealed: SealedHead, origin: str = DEFAULT_ORIGIN) -> Checkpoint:
    """The checkpoint of the history up to and including `sealed`."""
    head = sealed.head
    return Checkpoint(
        origin=origin,
        tree_size=head.batch,
        root=sealed.tree_root,
        events_total=head.events_total,
        last_position=head.last_position,
        recorded_at=head.recorded_at,
        head_hash=sealed.head_hash,
    )


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> str:
    """The checkpoint as a signed note, signed by `key` under the checkpoint's origin."""
    body = checkpoint.body()
    signature = key.sign(body.encode())
    stamp = key_id(checkpoint.origin, key.public_key()) + signature
    return f"{body}\n{_DASH} {checkpoint.origin} {_b64(stamp)}\n"


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The signed note's 4-byte key id: SHA-256(name || LF || 0x01 || public key)[:4]."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + raw).digest()[:4]


def open_note(note: str, public_key: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint of a signed note, once a signature by `public_key` is found to hold."""
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise CheckpointError("not a signed note: no blank line before the signatures")
    body += "\n"
    checkpoint = parse_body(body)
    wanted = key_id(checkpoint.origin, public_key)
    for line in signatures.splitlines():
        stamp = _signature_stamp(line, checkpoint.origin)
        if stamp is None or stamp[:4] != wanted:
            continue
        try:
            public_key.verify(stamp[4:], body.encode())
        except InvalidSignature as error:
            raise CheckpointError(
                "the checkpoint's signature does not hold: it was changed"
            ) from error
        return checkpoint
    raise CheckpointError(
        f"the checkpoint carries no signature by this key for {checkpoint.origin}"
    )


def _signature_stamp(line: str, origin: str) -> bytes | None:
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != _DASH or parts[1] != origin:
        return None
    try:
        return base64.b64decode(parts[2], validate=True)
    except ValueError:
        return None


def parse_body(body: str) -> Checkpoint:
    """The checkpoint a note's body states (its signature not checked)."""
    lines = body.rstrip("\n").split("\n")
    try:
        origin, size, root = lines[:3]
        extensions = dict(line.split(" ", 1) for line in lines[3:])
        return Checkpoint(
            origin=origin,
            tree_size=int(size),
            root=base64.b64decode(root, validate=True),
            events_total=int(extensions["events"]),
            last_position=int(extensions["position"]),
            recorded_at=datetime.fromisoformat(extensions["recorded_at"]),
            head_hash=base64.b64decode(extensions["head"], validate=True),
        )
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"not a billing-ledger checkpoint: {error}") from error


def read_unverified(note: str) -> Checkpoint:
    """The checkpoint a note states, without checking any signature (to locate it only)."""
    return parse_body(note.partition("\n\n")[0] + "\n")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM (PKCS#8) at `path`, e.g. from `openssl genpkey -algorithm ed25519`."""
    key = serialization.load_pem_private_key(_read(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} holds no Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in PEM at `path` (or the public half of a private key there)."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} holds no Ed25519 public key")
    return key


def generate_key(path: Path) -> Path:
    """Write a new Ed25519 private key to `path` (mode 0600) and its public key beside it;
    answer the public key's path."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private)
    public_path = path.with_name(path.name + ".pub")
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return public_path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror}") from error


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
