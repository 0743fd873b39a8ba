"""The `ledger` CLI as people and scripts use it: send commands, show the embedded servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local import embedded
from tests.helpers import Read, Servers, read_until
from tests.processes import ledger

pytestmark = pytest.mark.integration


class TestSend:
    """`ledger send` publishes Avro commands keyed by account id (a plan command: plan id)."""

    def test_flags_and_file_publish_decodable_commands(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """A command from flags and two from a JSON-lines file arrive on billing.commands."""
        env = {"LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap}
        by_flags = ledger(
            "send",
            "--no-wait",
            "OpenAccount",
            "--account-id",
            "acc-cli",
            "--currency",
            "EUR",
            "--customer-reference",
            "crm-1",
            env=env,
        )
        assert by_flags.returncode == 0, by_flags.stderr
        lines = tmp_path / "commands.jsonl"
        lines.write_text(
            '{"type": "Subscribe", "account_id": "acc-cli", "subscription_id": "s1", "plan_id": "p",'
            ' "price_minor": 500, "currency": "EUR", "interval_unit": "YEAR",'
            ' "issued_at": "2026-03-01T10:00:00"}\n\n'
            '{"type": "OpenAccount", "account_id": "acc-cli-2", "currency": "JPY",'
            ' "customer_reference": "crm-2", "command_id": "6f1c8e4e-8d7a-4a55-9a43-0d4f7c1b2a10"}\n'
        )
        by_file = ledger("send", "--file", str(lines), "--no-wait", env=env)
        assert by_file.returncode == 0, by_file.stderr
        printed = [json.loads(line) for line in (by_flags.stdout + by_file.stdout).splitlines()]
        assert [p["type"] for p in printed] == ["OpenAccount", "Subscribe", "OpenAccount"]
        assert printed[2]["command_id"] == "6f1c8e4e-8d7a-4a55-9a43-0d4f7c1b2a10"

        sent = {p["command_id"] for p in printed}

        def ours(found: list[Read]) -> dict[str, Read]:
            return {
                r.decoded.record["command_id"]: r
                for r in found
                if r.decoded and r.decoded.record["command_id"] in sent
            }

        records = ours(
            read_until(
                servers.kafka_bootstrap, "billing.commands", lambda found: len(ours(found)) == 3
            )
        )
        assert set(records) == sent
        subscribe = records[printed[1]["command_id"]]
        assert subscribe.key == b"acc-cli"
        assert subscribe.decoded is not None
        assert subscribe.decoded.record["issued_at"].isoformat() == "2026-03-01T10:00:00+00:00"
        assert subscribe.decoded.record["days_until_due"] == 14  # the schema's default

    def test_a_plan_command_is_keyed_by_its_plan(self, servers: Servers) -> None:
        """DefinePlan from flags: printed with its plan_id, published keyed by it."""
        env = {"LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap}
        result = ledger(
            "send",
            "DefinePlan",
            "--plan-id",
            "cli-gold",
            "--price-minor",
            "1500",
            "--currency",
            "EUR",
            "--interval-unit",
            "DAY",
            "--interval-count",
            "10",
            "--no-wait",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        (printed,) = [json.loads(line) for line in result.stdout.splitlines()]
        assert (printed["type"], printed["plan_id"]) == ("DefinePlan", "cli-gold")

        def ours(found: list[Read]) -> list[Read]:
            return [
                r
                for r in found
                if r.decoded and r.decoded.record["command_id"] == printed["command_id"]
            ]

        (record,) = ours(read_until(servers.kafka_bootstrap, "billing.commands", ours))
        assert record.key == b"cli-gold"
        assert record.decoded is not None
        assert record.decoded.record["interval_count"] == 10

    def test_bad_input_is_refused_with_the_line_and_nothing_is_sent(self, tmp_path: Path) -> None:
        """An unknown command type or a field of the wrong type is named, with exit status 2."""
        env = {"LEDGER_KAFKA_BOOTSTRAP": "127.0.0.1:1"}  # never reached: input is checked first
        unknown = tmp_path / "unknown.jsonl"
        unknown.write_text('{"type": "Teleport", "account_id": "a"}\n')
        result = ledger("send", "--file", str(unknown), env=env)
        assert result.returncode == 2
        assert "line 1" in result.stderr and "Teleport" in result.stderr
        wrong = tmp_path / "wrong.jsonl"
        wrong.write_text(
            '{"type": "OpenAccount", "account_id": "a", "currency": 7, "customer_reference": "c"}\n'
        )
        result = ledger("send", "--file", str(wrong), env=env)
        assert result.returncode == 2
        assert "currency" in result.stderr
        result = ledger("send", "--file", "-", env=env, stdin="not json\n")
        assert result.returncode == 2 and "not JSON" in result.stderr


class TestNoServer:
    """Without a configured or a running embedded server, the CLI says what to do."""

    def test_send_without_a_broker_names_the_variable(self, ledger_home: Path) -> None:
        """Exit status 2 and a message naming LEDGER_KAFKA_BOOTSTRAP and `ledger infra up`."""
        result = ledger(
            "send",
            "OpenAccount",
            "--account-id",
            "a",
            "--currency",
            "EUR",
            "--customer-reference",
            "c",
            env={"LEDGER_HOME": str(ledger_home), "LEDGER_KAFKA_BOOTSTRAP": ""},
        )
        assert result.returncode == 2
        assert "LEDGER_KAFKA_BOOTSTRAP" in result.stderr and "ledger infra up" in result.stderr


class TestInfra:
    """`ledger infra` manages the embedded servers and says how to connect."""

    def test_up_status_json_and_down(self, ledger_home: Path) -> None:
        """up prints the variables to export, status --json the addresses, down stops both."""
        env = {"LEDGER_HOME": str(ledger_home)}
        try:
            up = ledger("infra", "up", env=env)
            assert up.returncode == 0, up.stderr
            assert "export LEDGER_DATABASE_URL=" in up.stdout
            assert "export LEDGER_KAFKA_BOOTSTRAP=" in up.stdout
            status = json.loads(ledger("infra", "status", "--json", env=env).stdout)
            assert status["postgres"]["running"] and status["kafka"]["running"]
            assert status["kafka"]["address"].startswith("127.0.0.1:")
        finally:
            down = ledger("infra", "down", env=env)
        assert down.returncode == 0
        after = ledger("infra", "status", env=env)
        assert after.returncode == 3 and "not running" in after.stdout
        assert not embedded.status(ledger_home).kafka.running
