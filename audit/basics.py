"""What the `ledger` CLI needs of the audit without importing it: its errors and the log's default name."""

from __future__ import annotations

DEFAULT_ORIGIN = "billing-ledger"  # the log's name in checkpoints


class AuditError(Exception):
    """A mistake of the auditor's, or a proof or checkpoint that does not hold; the message says which."""


class CheckpointError(AuditError):
    """A checkpoint or key that cannot be read, or whose signature does not hold."""


class ProofError(AuditError):
    """A proof that cannot be made, read, or does not hold; the message says which part."""
