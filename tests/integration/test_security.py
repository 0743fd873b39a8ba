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

import psycopg
import pytest
from eventsourcing.persistence import InfrastructureFactory, OperationalError
from eventsourcing.utils import Environment
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from infra.postgres import LedgerPostgresFactory, connect, event_store_env
from ledger.application import BillingLedger
from outbox.relay import CREATE_POSITIONS
from projections.balances import SCHEMA as BALANCES_SCHEMA
from projections.projector import POSITIONS_SCHEMA
from runtime.runner import open_ledger
from tests.helpers import Servers

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
        for schema in (BALANCES_SCHEMA, POSITIONS_SCHEMA, CREATE_POSITIONS):
            connection.execute(schema)
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
            connection.execute("CREATE TABLE delinquency (account_id text PRIMARY KEY)")
        with as_role(ledger_tables, role, "") as connection:
            assert connection.execute("SELECT count(*) FROM delinquency").fetchone() == (0,)

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
