"""`ledger demo`: start the ledger, play a simulated book through it, say what happened."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from typing import Any

from demo.book import DEFAULT_CUSTOMERS, DEFAULT_MONTHS, DEFAULT_SEED, Book
from demo.driver import Driver, Stopped
from demo.ending import Where, finish
from demo.progress import ProgressDisplay
from infra import logs
from infra.config import ConfigError, Settings
from infra.kafka import clients
from runtime import runner
from wire.codec import AvroCodec

READY_TIMEOUT_S = 120.0


def add_demo_parser(verbs: Any) -> None:
    """The `ledger demo` subcommand."""
    demo = verbs.add_parser(
        "demo",
        help="play a simulated subscription business through the ledger",
        description="Start the ledger as `ledger run` does (embedded servers for what "
        "LEDGER_DATABASE_URL and LEDGER_KAFKA_BOOTSTRAP leave unset), then publish a simulated "
        "book to billing.commands as an upstream system would: plans, customers signing up, "
        "paying early, late or not at all, dunning, hardship, renegotiation, write-offs, plan "
        "changes, pauses, cancellations and feedback, month by month, waiting for each month's "
        "results. The same --seed gives the same book.",
    )
    demo.add_argument(
        "--customers", type=int, default=DEFAULT_CUSTOMERS, help="default %(default)s"
    )
    demo.add_argument("--months", type=int, default=DEFAULT_MONTHS, help="default %(default)s")
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default %(default)s")
    demo.add_argument(
        "--speed",
        type=float,
        default=0.0,
        metavar="MONTHS_PER_MINUTE",
        help="play at most this many business months per minute (default: as fast as the "
        "ledger answers)",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the ledger serving after the book, until Ctrl-C, to go on with `ledger send`",
    )
    demo.set_defaults(action=do_demo)


def do_demo(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger demo`."""
    if args.customers < 1 or args.months < 1 or args.speed < 0:
        raise ConfigError("--customers and --months must be at least 1, --speed not negative")
    if "LEDGER_LOG_LEVEL" not in os.environ:  # the progress is the demo's output, not the logs
        logs.configure("warning", settings.log_format)
        # kafka-python warns whenever deciding the book holds the interpreter for 0.1 s.
        logging.getLogger("kafka").setLevel(logging.ERROR)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with runner.servers(settings) as (database_url, bootstrap):
        settings = replace(settings, database_url=database_url, kafka_bootstrap=bootstrap)
        where = Where(database_url, clients(bootstrap, settings))
        ready = threading.Event()
        ledger = threading.Thread(
            target=runner.run,
            args=(settings, stop, lambda _: ready.set()),
            name="ledger",
            daemon=True,
        )
        ledger.start()
        try:
            return _play(args, where, codec, ready, stop)
        finally:
            stop.set()
            ledger.join(timeout=60)


def _play(
    args: argparse.Namespace,
    where: Where,
    codec: AvroCodec,
    ready: threading.Event,
    stop: threading.Event,
) -> int:
    """Play the book once the ledger runs, print the end, and serve on if asked to."""
    if not ready.wait(READY_TIMEOUT_S):
        raise ConfigError(f"the ledger did not start within {READY_TIMEOUT_S:.0f} s")
    book = Book(args.customers, args.months, args.seed)
    driver = Driver(where.kafka, codec, lambda _: None, months_per_minute=args.speed, stop=stop)
    try:
        with ProgressDisplay() as display:
            driver.report = display
            progress = driver.play(book)
    except Stopped as stopped:
        print(f"ledger demo: {stopped}", file=sys.stderr)
        return 130
    finish(where, progress, args.keep_running, sys.stdout)
    if args.keep_running:
        stop.wait()
    return 0
