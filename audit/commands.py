"""What the `ledger audit` subcommands do; imported only when one runs (see audit/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audit import checkpoint as checkpoints
from audit.basics import CheckpointError, ProofError
from audit.proofs import check, consistency_json
from audit.prove import position_of, prove_event, prove_extension
from audit.store import snapshot
from audit.verify import Verified, verify


def verify_history(args: argparse.Namespace, url: str) -> int:
    trusted = None
    if args.trusted is not None:
        if args.public_key is None:
            raise CheckpointError(
                "--from needs --public-key: a checkpoint counts only once its signature holds"
            )
        key = checkpoints.load_public_key(args.public_key)
        trusted = checkpoints.open_note(_text(args.trusted), key)
    with snapshot(url) as store:
        result = verify(store, trusted)
    print(result.describe())
    return 0 if isinstance(result, Verified) else 1


def print_checkpoint(args: argparse.Namespace, url: str) -> int:
    key = checkpoints.load_private_key(args.key)
    with snapshot(url) as store:
        last = store.last_head()
    if last is None:
        raise CheckpointError("the store has no batch yet: nothing to sign")
    sys.stdout.write(checkpoints.sign(checkpoints.checkpoint_of(last, args.origin), key))
    return 0


def keygen(args: argparse.Namespace) -> int:
    try:
        public = checkpoints.generate_key(args.path)
    except FileExistsError as error:
        raise CheckpointError(f"{args.path} exists: not overwritten") from error
    print(f"private key {args.path}, public key {public}")
    return 0


def prove(args: argparse.Namespace, url: str) -> int:
    note = _text(args.checkpoint)
    with snapshot(url) as store:
        if args.extends is not None:
            old = _text(args.extends)
            proof = consistency_json(old, note, prove_extension(store, old, note))
        else:
            if (args.event_id is None) == (args.position is None):
                raise ProofError("give EVENT_ID or --position (one of them), or --extends OLD")
            position = (
                args.position if args.position is not None else position_of(store, args.event_id)
            )
            proof = prove_event(store, note, position).to_json()
    print(json.dumps(proof, indent=2))
    return 0


def check_proof(args: argparse.Namespace) -> int:
    key = checkpoints.load_public_key(args.public_key)
    text = sys.stdin.read() if str(args.proof) == "-" else _text(args.proof)
    try:
        print(check(text, key))
    except ProofError as error:
        print(f"FAILED: {error}")
        return 1
    return 0


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror}") from error
