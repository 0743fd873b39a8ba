"""`ledger audit ...`: the auditor's subcommands of the `ledger` CLI.

Only the parser lives here: what a subcommand does (audit/commands.py, with the
cryptography and proof modules) is imported when it runs, so that `ledger run` and the
other subcommands start without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit import reconcile_cli, replay_cli
from audit.actions import DatabaseUrl, offline, online
from audit.basics import DEFAULT_ORIGIN, AuditError
from audit.export_cli import add_export_parsers

# What the audit subcommands raise for a mistake of the user's or a proof that fails.
ERRORS = (AuditError,)


def add_audit_parser(verbs: Any, database_url: DatabaseUrl, bootstrap: DatabaseUrl) -> None:
    """`ledger audit verify|checkpoint|keygen|prove|check-proof|replay|diff|reconcile|export|check-export|journal`."""
    audit = verbs.add_parser(
        "audit",
        help="verify the history, sign checkpoints, prove events, replay, reconcile and export "
        "(see docs/audit.md)",
        description="Tools for auditors: recompute the history's Merkle roots and links, sign "
        "checkpoints, make and check proofs, replay any business time as known at any "
        "recording time, reconcile the books, read models and topics with the events, and "
        "export the history and the general-ledger journal. Reads LEDGER_DATABASE_URL (or the "
        "running embedded server), `reconcile` also LEDGER_KAFKA_BOOTSTRAP; `check-proof` and "
        "`check-export` need no database.",
    )
    actions = audit.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    _add_verify(actions, database_url)
    _add_checkpoint(actions, database_url)
    keygen = actions.add_parser(
        "keygen",
        help="write a new Ed25519 key for signing checkpoints",
        description="Write a new Ed25519 private key (PEM, PKCS#8, mode 0600) to PATH and its "
        "public key to PATH.pub. `openssl genpkey -algorithm ed25519 -out PATH` does the same.",
    )
    keygen.add_argument("path", type=Path, metavar="PATH")
    keygen.set_defaults(action=offline("keygen"))
    _add_prove(actions, database_url)
    checker = actions.add_parser(
        "check-proof",
        help="check an inclusion or consistency proof, with no database",
        description="Check a proof made by `ledger audit prove`: the checkpoints' signatures "
        "by PUBLIC_KEY, the event's hash into its batch, the batch head into the checkpoint, or "
        "one checkpoint's tree into the other's. Exits 1 if anything fails.",
    )
    checker.add_argument("proof", type=Path, metavar="PROOF", help="the proof file (- for stdin)")
    checker.add_argument(
        "--public-key", type=Path, required=True, help="the signer's Ed25519 public key (PEM)"
    )
    checker.set_defaults(action=offline("check_proof"))
    replay_cli.register(actions, database_url)
    reconcile_cli.register(actions, database_url, bootstrap)
    add_export_parsers(actions, database_url)


def _add_verify(actions: Any, database_url: DatabaseUrl) -> None:
    parser = actions.add_parser(
        "verify",
        help="recompute every leaf, root and link of the history; report the first break",
        description="Walk the whole history in one consistent snapshot: hash every event again, "
        "compare each batch's root, each head's hash and link, the tree of heads and the Kafka "
        "positions with what is stored. Exits 0 if everything holds, 1 at the first break, "
        "which it names with its batch, position and what differs.",
    )
    parser.add_argument(
        "--from",
        dest="trusted",
        type=Path,
        metavar="CHECKPOINT",
        help="start from this signed checkpoint: the heads up to it are checked against its root, the events after it hashed again",
    )
    parser.add_argument(
        "--public-key",
        type=Path,
        help="the key that signed the --from checkpoint (required with --from)",
    )
    parser.set_defaults(action=online("verify_history", database_url))


def _add_checkpoint(actions: Any, database_url: DatabaseUrl) -> None:
    parser = actions.add_parser(
        "checkpoint",
        help="print a signed checkpoint of the history (size, root, position, time)",
        description="Print the latest batch head as a signed checkpoint (a C2SP signed note, "
        "Ed25519): keep it outside the system, and check later history against it.",
    )
    parser.add_argument(
        "--key", type=Path, required=True, help="the Ed25519 private key (PEM) to sign with"
    )
    parser.add_argument(
        "--origin",
        default=DEFAULT_ORIGIN,
        help="the log's name in the checkpoint (default %(default)s)",
    )
    parser.set_defaults(action=online("print_checkpoint", database_url))


def _add_prove(actions: Any, database_url: DatabaseUrl) -> None:
    parser = actions.add_parser(
        "prove",
        help="print an inclusion proof of one event, or a consistency proof of two checkpoints",
        description="With EVENT_ID (the event_id header on billing.events) or --position: prove "
        "that event is in the history CHECKPOINT signs. With --extends OLD: prove CHECKPOINT's "
        "history extends OLD's. Prints JSON for `ledger audit check-proof`.",
    )
    parser.add_argument("event_id", nargs="?", metavar="EVENT_ID")
    parser.add_argument(
        "--position", type=int, help="the event's position (the event_position header)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="the signed checkpoint to prove against"
    )
    parser.add_argument("--extends", type=Path, metavar="OLD", help="an earlier signed checkpoint")
    parser.set_defaults(action=online("prove", database_url))
