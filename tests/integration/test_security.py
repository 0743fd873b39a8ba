"""Security on real PostgreSQL: TLS settings reach every connection; the analytics role reads the read models only."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import InfrastructureFactory, OperationalError
from eventsourcing.utils import Environment
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from commands.handlers import Delivery, process
from commands.mapping import content_digest
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from infra.kafka import clients
from infra.postgres import (
    LOCK_TABLES,
    LedgerPostgresFactory,
    connect,
    create_tables,
    ensure_lock_table,
    event_store_env,
)
from ledger.application import BillingLedger
from ledger.receipts import Source
from outbox.relay import CREATE_POSITIONS, EventRelay
from projections.failures import FAILURES_SCHEMA
from projections.projector import POSITIONS_SCHEMA
from projections.registry import READ_MODELS, read_model_tables
from runtime.analytics import CONNECTION_LIMIT, PROTECTED_TABLES
from runtime.runner import open_ledger
from tests.helpers import CODEC, Servers, open_account

pytestmark = pytest.mark.integration


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for end in (source, sink):
        with suppress(OSError):
            end.close()


@contextmanager
def loopback_tcp_to(unix_path: str) -> Iterator[int]:
    """A loopback TCP port whose every connection is forwarded to the Unix socket at `unix_path`.

    The embedded PostgreSQL listens on a Unix socket only, and libpq never negotiates TLS over
    one (sslmode is ignored there); over TCP it asks the server for TLS first.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(unix_path)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        server.join()
        listener.close()


@pytest.fixture(name="tcp_url")
def fixture_tcp_url(servers: Servers) -> Iterator[str]:
    """The test database's URL over TCP, on a server without TLS."""
    params = conninfo_to_dict(servers.database_url)
    host = str(params.get("host") or "")
    with connect(servers.database_url) as connection:
        row = connection.execute("SHOW ssl").fetchone()
    if row is not None and row[0] == "on":
        pytest.skip("the server offers TLS; these tests need one that does not")
    if not host.startswith("/"):
        yield servers.database_url
        return
    socket_path = f"{host}/.s.PGSQL.{params.get('port') or 5432}"
    with loopback_tcp_to(socket_path) as port:
        yield make_conninfo(servers.database_url, host="127.0.0.1", port=str(port))


class TestPostgresTls:
    """TLS parameters of LEDGER_DATABASE_URL reach the plain connections and the event store's pool."""

    def test_sslmode_require_fails_on_a_plain_connection(self, tcp_url: str) -> None:
        """A plain connection with sslmode=require refuses a server without TLS."""
        with pytest.raises(psycopg.OperationalError, match="SSL"):
            connect(make_conninfo(tcp_url, sslmode="require"))

    def test_sslmode_require_fails_in_the_event_store(
        self, tcp_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The event store's pool, too, refuses a server without TLS when the URL requires it."""
        env = event_store_env(make_conninfo(tcp_url, sslmode="require"))
        env["POSTGRES_CONNECT_TIMEOUT"] = "2"
        # The factory open_ledger's BillingLedger builds, on its own so that it can be closed.
        factory = InfrastructureFactory.construct(Environment(BillingLedger.name, env))
        try:
            assert isinstance(factory, LedgerPostgresFactory)
            with (
                caplog.at_level(logging.WARNING, logger="psycopg.pool"),
                pytest.raises(OperationalError, match="couldn't get a connection"),
            ):
                factory.process_recorder()
        finally:
            factory.close()
        assert "server does not support SSL, but SSL was required" in caplog.text

    def test_sslmode_disable_connects_everywhere(self, tcp_url: str) -> None:
        """With sslmode=disable the same server serves both, unencrypted."""
        url = make_conninfo(tcp_url, sslmode="disable")
        with connect(url) as connection:
            row = connection.execute(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
            assert row == (False,)
        ledger = open_ledger(url)
        try:
            assert ledger.recorder.max_notification_id() is None
        finally:
            ledger.close()


def ledger_cli(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `ledger ARGS` against `database_url` and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        env={**os.environ, "LEDGER_DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(name="ledger_tables")
def fixture_ledger_tables(servers: Servers) -> str:
    """The test database with the tables `ledger run` creates: read models, event store, relay."""
    with connect(servers.database_url, autocommit=True) as connection:
        schemas = (model.schema for model in READ_MODELS)
        create_tables(connection, POSITIONS_SCHEMA, FAILURES_SCHEMA, CREATE_POSITIONS, *schemas)
        for table in LOCK_TABLES:
            ensure_lock_table(connection, table)
        connection.execute(
            "INSERT INTO balances (account_id, currency, customer_reference, account_version, "
            "updated_at) VALUES ('acc-1', 'EUR', 'crm-1', 1, now())"
        )
    open_ledger(servers.database_url).close()
    return servers.database_url


@pytest.fixture(name="role")
def fixture_role(servers: Servers) -> Iterator[str]:
    """A role name of the test's own, dropped again with everything granted to it."""
    role = f"analytics_{uuid.uuid4().hex[:8]}"
    yield role
    with connect(servers.database_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if exists.fetchone() is not None:
            connection.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def as_role(database_url: str, role: str, password: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the test database as `role`."""
    return psycopg.connect(
        make_conninfo(database_url, user=role, password=password), autocommit=True
    )


class TestGrantAnalytics:
    """`ledger db grant-analytics` makes a role that reads the read models and nothing else."""

    def test_the_role_reads_the_read_models_only(self, ledger_tables: str, role: str) -> None:
        """The role selects balances and projection positions; the event store and writes are refused."""
        granted = ledger_cli(
            "db",
            "grant-analytics",
            "--role",
            role,
            "--password-env",
            "ANALYTICS_PASSWORD",
            database_url=ledger_tables,
            ANALYTICS_PASSWORD="s3cret-analytics",
        )
        assert granted.returncode == 0, granted.stderr
        assert f"role {role}: created" in granted.stdout
        assert "s3cret-analytics" not in granted.stdout + granted.stderr
        with connect(ledger_tables) as connection:
            attributes = connection.execute(
                "SELECT rolcanlogin, rolinherit, rolsuper FROM pg_roles WHERE rolname = %s", (role,)
            ).fetchone()
        assert attributes == (True, False, False)
        with as_role(ledger_tables, role, "s3cret-analytics") as connection:
            assert connection.execute("SELECT account_id FROM balances").fetchall() == [("acc-1",)]
            assert connection.execute("SELECT count(*) FROM projection_positions").fetchone() == (
                0,
            )
            for table in (
                "billing_events",
                "billing_tracking",
                "billing_batch_heads",
                "ledger_relay_positions",
            ):
                with pytest.raises(errors.InsufficientPrivilege):
                    connection.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            with pytest.raises(errors.InsufficientPrivilege):
                connection.execute(
                    "INSERT INTO balances (account_id, currency, customer_reference, "
                    "account_version, updated_at) VALUES ('acc-2', 'EUR', 'x', 1, now())"
                )
            with pytest.raises(errors.InsufficientPrivilege):
                connection.execute("DELETE FROM balances")

    def test_the_password_reaches_the_server_hashed(self, ledger_tables: str, role: str) -> None:
        """The role's password is stored as a SCRAM-SHA-256 verifier (read where the test may)."""
        granted = ledger_cli(
            "db",
            "grant-analytics",
            "--role",
            role,
            "--password-env",
            "ANALYTICS_PASSWORD",
            database_url=ledger_tables,
            ANALYTICS_PASSWORD="s3cret-analytics",
        )
        assert granted.returncode == 0, granted.stderr
        with connect(ledger_tables) as connection:
            superuser = connection.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            if superuser.fetchone() != (True,):
                pytest.skip("reading pg_authid needs a superuser")
            stored = connection.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()
        assert stored is not None and str(stored[0]).startswith("SCRAM-SHA-256$")

    def test_granting_again_changes_nothing(self, ledger_tables: str, role: str) -> None:
        """A second run succeeds and leaves the same privileges."""
        first = ledger_cli("db", "grant-analytics", "--role", role, database_url=ledger_tables)
        assert first.returncode == 0, first.stderr
        before = privileges(ledger_tables)
        second = ledger_cli("db", "grant-analytics", "--role", role, database_url=ledger_tables)
        assert second.returncode == 0, second.stderr
        assert f"role {role}: already there" in second.stdout
        assert privileges(ledger_tables) == before

    def test_tables_the_ledger_creates_later_are_readable(
        self, ledger_tables: str, role: str
    ) -> None:
        """A read model added after the grant is readable without granting again."""
        granted = ledger_cli("db", "grant-analytics", "--role", role, database_url=ledger_tables)
        assert granted.returncode == 0, granted.stderr
        with connect(ledger_tables, autocommit=True) as connection:
            connection.execute("CREATE TABLE a_later_read_model (account_id text PRIMARY KEY)")
        with as_role(ledger_tables, role, "") as connection:
            assert connection.execute("SELECT count(*) FROM a_later_read_model").fetchone() == (0,)

    def test_refuses_before_the_ledger_created_its_tables(
        self, servers: Servers, role: str
    ) -> None:
        """On a database without the event store, it refuses: default privileges would expose it."""
        refused = ledger_cli(
            "db", "grant-analytics", "--role", role, database_url=servers.database_url
        )
        assert refused.returncode == 2
        assert "start the ledger once" in refused.stderr
        with connect(servers.database_url) as connection:
            found = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            assert found.fetchone() is None  # nothing was left half done

    def test_refuses_the_ledgers_own_user(self, ledger_tables: str) -> None:
        """Naming the ledger's user (the tables' owner) is refused: it could write the event store."""
        owner = str(conninfo_to_dict(ledger_tables).get("user") or "postgres")
        refused = ledger_cli("db", "grant-analytics", "--role", owner, database_url=ledger_tables)
        assert refused.returncode == 2
        assert "choose another role" in refused.stderr


def privileges(database_url: str) -> list[tuple[object, ...]]:
    """Every table's access list and every default access list of the database."""
    with connect(database_url) as connection:
        return connection.execute(
            "SELECT relname::text, relacl::text FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = 'public'::regnamespace "
            "UNION ALL SELECT 'default', defaclacl::text FROM pg_default_acl "
            "UNION ALL SELECT 'database', datacl::text FROM pg_database "
            "WHERE datname = current_database() ORDER BY 1"
        ).fetchall()


# The advisory lock keys the ledger used before its locks became table locks.
OLD_ADVISORY_KEYS = (0x6C65646765720001, 0x6C65646765720002, 0x6C65646765720003)


@pytest.fixture(name="analytics")
def fixture_analytics(ledger_tables: str, role: str) -> Iterator[psycopg.Connection[Any]]:
    """A session of a role made by `ledger db grant-analytics`."""
    granted = ledger_cli(
        "db",
        "grant-analytics",
        "--role",
        role,
        "--password-env",
        "ANALYTICS_PASSWORD",
        database_url=ledger_tables,
        ANALYTICS_PASSWORD="s3cret-analytics",
    )
    assert granted.returncode == 0, granted.stderr
    with as_role(ledger_tables, role, "s3cret-analytics") as connection:
        yield connection


def refused(connection: psycopg.Connection[Any], statement: sql.Composable | str) -> bool:
    """Whether `statement` fails for lack of privilege (the session stays usable)."""
    try:
        connection.execute(statement)  # type: ignore[arg-type]
    except errors.InsufficientPrivilege:
        return True
    return False


class TestTheAnalyticsRoleCannotStopTheLedger:
    """The analytics role reads every read model, and holds nothing the ledger needs."""

    def test_it_reads_every_read_model_table(self, analytics: psycopg.Connection[Any]) -> None:
        """SELECT works on each table of the registry, the projector's positions and failures."""
        for table in read_model_tables():
            analytics.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))

    def test_it_reads_nothing_else_of_the_ledger(self, analytics: psycopg.Connection[Any]) -> None:
        """The event store, the relay's positions and the lock tables are refused."""
        for table in PROTECTED_TABLES:
            assert refused(analytics, sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))

    def test_it_takes_no_lock_of_the_ledgers(self, analytics: psycopg.Connection[Any]) -> None:
        """No table lock beyond ACCESS SHARE on any table, no row lock on a read model."""
        modes = ("ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "EXCLUSIVE")
        for table in (*read_model_tables(), *PROTECTED_TABLES):
            for mode in (*modes, "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"):
                statement = sql.SQL("LOCK TABLE {} IN {} MODE NOWAIT").format(
                    sql.Identifier(table), sql.SQL(mode)
                )
                with analytics.transaction():
                    assert refused(analytics, statement), (table, mode)
                    raise_rollback()
        for clause in ("FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE"):
            assert refused(analytics, f"SELECT * FROM balances {clause}")

    def test_it_creates_nothing(self, analytics: psycopg.Connection[Any]) -> None:
        """No table, no temporary table, no schema, no role, no database."""
        assert refused(analytics, "CREATE TABLE mine (x int)")
        assert refused(analytics, "CREATE TEMPORARY TABLE mine (x int)")
        assert refused(analytics, "CREATE SCHEMA mine")
        assert refused(analytics, "CREATE ROLE mine")
        assert refused(analytics, "CREATE DATABASE mine")

    def test_its_sessions_are_bounded(
        self, analytics: psycopg.Connection[Any], ledger_tables: str, role: str
    ) -> None:
        """A connection limit, a statement timeout and an idle-in-transaction timeout."""
        assert analytics.execute("SHOW statement_timeout").fetchone() == ("30s",)
        idle = analytics.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        assert idle == ("1min",)
        with connect(ledger_tables) as connection:
            limit = connection.execute(
                "SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (role,)
            ).fetchone()
        assert limit == (CONNECTION_LIMIT,)

    def test_it_cannot_stall_the_relay(
        self, servers: Servers, analytics: psycopg.Connection[Any]
    ) -> None:
        """Holding every advisory lock the ledger ever used, and trying its lock tables,
        the role leaves a relay free to lead and publish."""
        for key in OLD_ADVISORY_KEYS:
            analytics.execute("SELECT pg_advisory_lock(%s)", (key,))
        for table in LOCK_TABLES:
            with analytics.transaction():
                assert refused(
                    analytics,
                    sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(sql.Identifier(table)),
                )
                raise_rollback()
        ledger = open_ledger(servers.database_url)
        producer = clients(servers.kafka_bootstrap).producer()
        relay = EventRelay(ledger, producer, CODEC, servers.database_url, "cluster-a")
        try:
            record = open_account("acc-s")
            work = UnitOfWork(ledger)
            delivery = Delivery(
                command_from_record("OpenAccount", record),
                "OpenAccount",
                content_digest("OpenAccount", record),
                Source("billing.commands", 0, 0),
            )
            process(work, [delivery], frozenset())
            ledger.save(*work.changed)
            assert relay.run_once() == 2  # AccountOpened and its result
        finally:
            relay.close()
            producer.close()
            ledger.close()


def raise_rollback() -> None:
    """End the surrounding `transaction()` block with a rollback."""
    raise psycopg.Rollback()
