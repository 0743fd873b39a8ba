"""`python -m bench <benchmark>`: the benchmarks, each starting its own servers.

python -m bench pipeline --commands 5000 --accounts 1000 [--rate 500] [--client kafka-python,confluent-kafka]
python -m bench throughput [ACCOUNTS]
python -m bench latency [COUNT]
python -m bench projections [COMMANDS]
python -m bench forecast_days [COMMANDS]
python -m bench writer [--against CHECKOUT] [--rounds N]
python -m bench rebuild [--against CHECKOUT] [--rounds N] [--snapshots]
python -m bench memory --commands 1000000 --accounts 100000 --checkpoint 100000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra.config import KAFKA_CLIENTS

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["writer"]:  # the writer alone, with options of its own
        from bench import writer

        return writer.main(arguments[1:])
    if arguments[:1] == ["rebuild"]:  # rebuild alone, with options of its own
        from bench import rebuild

        return rebuild.main(arguments[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    pipeline = benchmarks.add_parser(
        "pipeline", help="ledger run end to end against the naive baseline, in one run"
    )
    pipeline.add_argument(
        "--commands",
        type=int,
        default=5000,
        help="commands of the burst and of the steady phase (default 5000)",
    )
    pipeline.add_argument(
        "--accounts",
        type=int,
        default=1000,
        help="accounts the commands are spread over (default 1000)",
    )
    pipeline.add_argument(
        "--rate",
        type=float,
        default=500,
        help="offered commands/s of the steady phase (default 500)",
    )
    pipeline.add_argument(
        "--steady-commands",
        type=int,
        help="commands of the steady phase (default: as many as --commands)",
    )
    pipeline.add_argument("--broker", help="Kafka bootstrap servers (default: an embedded broker)")
    pipeline.add_argument("--database", help="PostgreSQL server URL (default: an embedded server)")
    pipeline.add_argument(
        "--client",
        default=KAFKA_CLIENTS[0],
        help=f"ledger run's Kafka client(s), comma separated: {', '.join(KAFKA_CLIENTS)} (default {KAFKA_CLIENTS[0]})",
    )
    pipeline.add_argument(
        "--config",
        action="append",
        metavar="LABEL:VAR=VALUE,...",
        help="a ledger run with these LEDGER_* variables (repeatable; replaces --client), e.g. "
        "workers:LEDGER_KAFKA_CLIENT=confluent-kafka,LEDGER_WORKERS=1",
    )
    pipeline.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    pipeline.add_argument(
        "--out", type=Path, help="the result file (default bench/results/pipeline-<time>.json)"
    )
    memory = benchmarks.add_parser(
        "memory", help="each ledger run process's memory and rate at checkpoints of commands"
    )
    memory.add_argument("--commands", type=int, default=20_000, help="default 20000")
    memory.add_argument("--accounts", type=int, default=5_000, help="default 5000")
    memory.add_argument(
        "--checkpoint", type=int, default=5_000, help="commands between samples (default 5000)"
    )
    memory.add_argument(
        "--client", default="confluent-kafka", choices=KAFKA_CLIENTS, help="ledger run's client"
    )
    memory.add_argument(
        "--events-ahead",
        type=int,
        help="publish only while fewer events than this wait for the projector (default: no limit)",
    )
    memory.add_argument(
        "--drain-s",
        type=float,
        default=1800,
        help="seconds the projector may catch up after the last command (default 1800)",
    )
    memory.add_argument("--out", type=Path, help="default bench/results/memory-<time>.json")
    for name, help_text in (
        ("throughput", "a burst of OpenAccount + Subscribe"),
        ("latency", "one command at a time"),
        ("projections", "the projector's write path and rebuild, without Kafka"),
        ("forecast_days", "the forecast of the snapshot days, before and after, alternating"),
    ):
        other = benchmarks.add_parser(name, help=help_text)
        other.add_argument("size", type=int, nargs="?")
    args = parser.parse_args(arguments)
    if args.benchmark == "pipeline":
        return run_pipeline(args)
    if args.benchmark == "memory":
        from bench import memory as memory_bench

        return memory_bench.main(
            args.commands,
            args.accounts,
            args.checkpoint,
            args.client,
            args.events_ahead,
            args.drain_s,
            args.out,
        )
    module = importlib.import_module(f"bench.{args.benchmark}")
    module.main(*([args.size] if args.size else []))
    return 0


def run_pipeline(args: argparse.Namespace) -> int:
    from bench.machine import machine
    from bench.pipeline import LedgerConfig, run
    from bench.servers import bench_servers

    client_names = [name.strip() for name in args.client.split(",") if name.strip()]
    unknown = set(client_names) - set(KAFKA_CLIENTS)
    if unknown:
        print(
            f"unknown --client {', '.join(sorted(unknown))}; known: {', '.join(KAFKA_CLIENTS)}",
            file=sys.stderr,
        )
        return 2
    configs = [LedgerConfig.parse(text) for text in args.config or client_names]
    # The benchmark's own publisher and watchers use the cheaper client when it is there.
    observer = "confluent-kafka" if importlib.util.find_spec("confluent_kafka") else "kafka-python"
    with bench_servers(args.broker, args.database) as servers:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        details = machine(servers.server_url)
        figures = run(
            servers,
            args.commands,
            args.accounts,
            args.rate,
            configs,
            observer,
            not args.no_baseline,
            args.steady_commands,
        )
        details["load_average_1_5_15_after"] = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {
        "started": started,
        "parameters": {
            "commands": args.commands,
            "accounts": args.accounts,
            "rate": args.rate,
            "steady_commands": args.steady_commands or args.commands,
            "configs": {config.label: config.variables for config in configs},
            "observer_client": observer,
            "broker": args.broker or "embedded tansu",
            "database": "given" if args.database else "embedded PostgreSQL",
        },
        "machine": details,
        **figures,
    }
    out = args.out or RESULTS / f"pipeline-{started.replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
