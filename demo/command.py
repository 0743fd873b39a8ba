"""`ledger demo`: start the ledger, play a simulated book through it, say what happened."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from demo.book import DEFAULT_CUSTOMERS, DEFAULT_MONTHS, DEFAULT_SEED, Book
from demo.driver import Driver, Stopped
from demo.ending import Where, finish
from demo.progress import ProgressDisplay
from infra import logs
from infra.config import ConfigError, Settings
from infra.kafka import clients
from infra.postgres import connect
from ledger.receipts import receipt_uuid
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
        "changes, pauses, cancellations and feedback, month after month, counting the results. "
        "Then wait for the read models and print the reports: balances, aging, forecast, MRR "
        "by month, charges per payment method, dunning and renegotiation outcomes (tables on a "
        "terminal, JSON lines otherwise), and write the dashboard (--dashboard). The default book, 200 customers over 12 months (about "
        "6,300 commands), plays in well under a minute on a quiet two-core machine, the read "
        "models catching up after it. The same --seed "
        "gives the same book and the same read models. A ledger that already holds other "
        "commands is refused (use another LEDGER_HOME); the same book again changes nothing.",
    )
    demo.add_argument(
        "--customers",
        type=int,
        default=DEFAULT_CUSTOMERS,
        help="customers of the book (default %(default)s; 1000 is five times the commands, and "
        "longer than that for the read models)",
    )
    demo.add_argument(
        "--months", type=int, default=DEFAULT_MONTHS, help="business months (default %(default)s)"
    )
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default %(default)s")
    demo.add_argument(
        "--speed",
        type=float,
        default=0.0,
        metavar="MONTHS_PER_MINUTE",
        help="play at most this many business months per minute, e.g. 6 for a month every 10 "
        "s (default: as fast as the ledger answers)",
    )
    demo.add_argument(
        "--dashboard",
        type=Path,
        default=Path("dashboard.html"),
        metavar="FILE",
        help="where to write the dashboard at the end, one self-contained HTML page (default: "
        "%(default)s in the current directory), as `ledger report dashboard` does",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the ledger serving after the reports, until Ctrl-C, to go on with `ledger "
        "send` and `ledger report` from another terminal",
    )
    demo.set_defaults(action=do_demo)


def do_demo(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    """`ledger demo`."""
    if args.customers < 1 or args.months < 1 or args.speed < 0:
        raise ConfigError("--customers and --months must be at least 1, --speed not negative")
    if "LEDGER_LOG_LEVEL" not in os.environ:  # the progress is the demo's output, not the logs
        logs.configure("warning", settings.log_format)
        # kafka-python warns whenever the interpreter is held for 0.1 s, and logs an error
        # when a client closed while refreshing metadata (the lag checks at the end).
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with runner.servers(settings) as (database_url, bootstrap):
        settings = replace(settings, database_url=database_url, kafka_bootstrap=bootstrap)
        where = Where(database_url, clients(bootstrap, settings), stop)
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
    check_ledger_fits(where.database_url, book)
    driver = Driver(where.kafka, codec, lambda _: None, months_per_minute=args.speed, stop=stop)
    try:
        with ProgressDisplay() as display:
            driver.report = display
            progress = driver.play(book)
        finish(where, progress, args.keep_running, args.dashboard, sys.stdout)
    except Stopped as stopped:
        print(f"ledger demo: {stopped}", file=sys.stderr)
        return 130
    if args.keep_running:
        stop.wait()
    return 0


def check_ledger_fits(database_url: str, book: Book) -> None:
    """Refuse to play `book` into a ledger that holds other commands: its accounts and plans
    would collide with them. The same book again is fine: its commands are redeliveries,
    answered as the first time, and the ledger changes nothing."""
    with connect(database_url) as connection:
        row = connection.execute(
            "SELECT EXISTS (SELECT 1 FROM billing_events), "
            "EXISTS (SELECT 1 FROM billing_events WHERE originator_id = %s)",
            (receipt_uuid(book.first_command_id),),
        ).fetchone()
    if row is not None and row[0] and not row[1]:
        raise ConfigError(
            "this ledger already holds other commands than this book's (another --customers, "
            "--months or --seed, or commands of your own), and the book would collide with "
            "them. Play it into an empty ledger: LEDGER_HOME=/tmp/ledger-demo ledger demo ..., "
            "or `ledger infra down` and remove LEDGER_HOME (~/.billing-ledger), or repeat "
            "the book this ledger holds."
        )
