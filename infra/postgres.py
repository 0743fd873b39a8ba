"""PostgreSQL: connections, the event store's configuration, and the recorder that stores Kafka positions.

Every connection the ledger opens takes its parameters from LEDGER_DATABASE_URL alone,
TLS ones (sslmode, sslrootcert, sslcert, sslkey, ...) included: the plain connections get the
URL itself, the event store's pool gets them through `LedgerPostgresFactory`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresDatastore, PostgresFactory, PostgresProcessRecorder
from eventsourcing.utils import Environment, EnvType, retry
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from infra import merkle
from infra.batch_heads import BatchHeadsTable, event_leaf, seal

RECORDER_TOPIC = "infra.postgres:PositionsProcessRecorder"
FACTORY_TOPIC = "infra.postgres:LedgerPostgresFactory"
# The event store's setting that carries the URL's other libpq parameters to its pool.
EXTRA_CONNINFO = "POSTGRES_EXTRA_CONNINFO"
# Sent by every transaction that stores events, heard by the relay.
NOTIFY_EVENTS = "NOTIFY ledger_events"
LISTEN_EVENTS = "LISTEN ledger_events"
# The parameters the eventsourcing library takes from its own POSTGRES_* settings.
_LIBRARY_PARAMETERS = ("dbname", "host", "port", "user", "password")


class PositionsProcessRecorder(PostgresProcessRecorder):
    """A process recorder that stores several Kafka positions and a batch head with a batch of events.

    A poll batch spans partitions; `save(..., positions=[Tracking(...), ...])` stores one
    tracking row per partition in the same transaction as the events. A position that is
    not beyond the stored one raises IntegrityError, so two workers can never both record
    the same offsets.

    Each transaction also adds a batch head (infra/batch_heads.py): the Merkle root of its
    events, the time it was recorded (this process's clock: the edge, never the domain),
    the positions it stored and the previous head's hash. The events' leaves and root are
    hashed before the transaction; under the library's table lock, which already orders the
    batches, only the head is read, hashed and inserted: no lock of its own.

    It also inserts without psycopg's pipeline mode: the library's pipelined insert hangs
    forever (both ends waiting to read) once one batch's array parameter reaches a few
    megabytes, e.g. 1,000 events over a unix socket or 5,000 events of 2 kB over TCP
    (psycopg 3.3.9; see psycopg issue 685). The statements are the library's own, but for the
    insert of the events, which sends them as four binary arrays (`_insert_stored_events`).
    """

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
    ) -> None:
        super().__init__(
            datastore, events_table_name=events_table_name, tracking_table_name=tracking_table_name
        )
        self.batch_heads = BatchHeadsTable(datastore.schema, heads_table_name(events_table_name))
        self.sql_create_statements.append(self.batch_heads.create_statement)
        self.insert_columns_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(datastore.schema),
            table=Identifier(events_table_name),
            id_type=Identifier(datastore.originator_id_type),
        )

    @staticmethod
    def clock() -> datetime:
        """The time of recording: the wall clock of the process that writes."""
        return datetime.now(UTC)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions: Sequence[Tracking] = kwargs.get("positions", ())
        leaves = [
            event_leaf(e.topic, _uuid(e.originator_id), e.originator_version, e.state)
            for e in stored_events
        ]
        events_root = merkle.root(leaves)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                if positions:  # the positions moved on (dead letters only): a head says so
                    self._lock_table(curs)
                    self._add_head(curs, (leaves, events_root), [], positions)
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            ids = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            self._add_head(curs, (leaves, events_root), ids or (), positions)
            curs.execute(NOTIFY_EVENTS)  # delivered on commit: wakes the relay (EventsWakeup)
            return ids

    def _add_head(
        self,
        curs: psycopg.Cursor[DictRow],
        hashed: tuple[list[bytes], bytes],
        ids: Sequence[int],
        positions: Sequence[Tracking],
    ) -> None:
        """Add the batch's head; called holding the events table's lock.

        `hashed` is the events' leaves and root in the order given; the ids say their order
        in the store, which is the same unless the database answered otherwise.
        """
        leaves, events_root = hashed
        if list(ids) != sorted(ids):
            leaves = [leaf for _, leaf in sorted(zip(ids, leaves, strict=True))]
            events_root = merkle.root(leaves)
        if ids and max(ids) - min(ids) + 1 != len(ids):
            raise ProgrammingError(f"the batch's notification ids are not consecutive: {ids}")
        sealed = seal(
            self.batch_heads.last(curs),
            events_root=events_root,
            event_count=len(leaves),
            last_position=max(ids) if ids else None,
            sources=[(t.application_name, t.notification_id) for t in positions],
            now=self.clock(),
        )
        self.batch_heads.insert(curs, sealed)

    def _insert_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        """Insert the events as the library does (under its table lock, after its NOTIFY, one
        statement answering the notification ids in order), but from four arrays sent in
        binary: the library's one array of composite values is dumped as text, value by value
        in Python, about 35 µs of the writer's CPU per event; four plain arrays, about 4 µs."""
        self._lock_table(curs)
        self._notify_channel(curs)
        columns = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        curs.execute(self.insert_columns_statement, columns, prepare=True)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events_of_many(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every stored event of the given aggregates, in one query, ordered by aggregate and version."""
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (list(originator_ids),), prepare=True)
            return [
                StoredEvent(
                    row["originator_id"],
                    row["originator_version"],
                    row["topic"],
                    bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def _insert_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        positions: Sequence[Tracking] = kwargs.get("positions", ())
        for tracking in positions:
            self._insert_tracking(curs, tracking=tracking)
        super()._insert_events(curs, stored_events, **kwargs)


class LedgerPostgresFactory(PostgresFactory):
    """The library's PostgreSQL factory, whose pool also gets the URL's other libpq parameters.

    The library builds its connections from host, port, user, password and dbname only; the
    TLS parameters of LEDGER_DATABASE_URL (sslmode, sslrootcert, sslcert, sslkey, ...) would be
    dropped. They arrive here as one connection string, and are added to the pool's connection
    arguments before the pool opens: nothing is written to the process environment, so no
    other connection or child process is affected.
    """

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        extra = conninfo_to_dict(self.env.get(EXTRA_CONNINFO) or "")
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict)  # the library hands its pool a plain dict
        for name, value in extra.items():
            kwargs.setdefault(name, value)


def heads_table_name(events_table_name: str) -> str:
    """The batch heads table beside an events table: billing_events -> billing_batch_heads."""
    return events_table_name.removesuffix("_events") + "_batch_heads"


def _uuid(originator_id: UUID | str) -> UUID:
    return originator_id if isinstance(originator_id, UUID) else UUID(originator_id)


def event_store_env(database_url: str) -> dict[str, str]:
    """The eventsourcing library's settings for the database at `database_url`."""
    params = conninfo_to_dict(database_url)
    extra = {k: v for k, v in params.items() if k not in _LIBRARY_PARAMETERS}
    return {
        "PERSISTENCE_MODULE": FACTORY_TOPIC,
        "PROCESS_RECORDER_TOPIC": RECORDER_TOPIC,
        "POSTGRES_DBNAME": str(params.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(params.get("host") or "localhost"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        # Always set, even empty: the library also reads the process environment, and only
        # the URL should decide how the ledger connects.
        EXTRA_CONNINFO: make_conninfo("", **extra),
        # Kept off: the db-functions path takes no table lock, and the relay tails the
        # notification log, which is safe only while ids are issued in commit order.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        # Off: a ping before every checkout doubled the round trips of the command loop;
        # the library retries a statement that fails on a broken connection.
        "POSTGRES_PRE_PING": "n",
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
    }


def connect(database_url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A new connection to the database at `database_url`, with every parameter of the URL."""
    return psycopg.connect(database_url, autocommit=autocommit, connect_timeout=10)


class Reconnecting:
    """One connection of the caller's own, opened again when the server has dropped it."""

    def __init__(
        self,
        database_url: str,
        *,
        autocommit: bool = False,
        on_connect: Callable[[psycopg.Connection[Any]], None] | None = None,
    ) -> None:
        self.database_url = database_url
        self.autocommit = autocommit
        self.on_connect = on_connect
        self._connection: psycopg.Connection[Any] | None = None

    def get(self) -> psycopg.Connection[Any]:
        """The open connection, reconnecting first if it is closed or broken."""
        current = self._connection
        if current is None or current.closed or current.broken:
            if current is not None:
                current.close()
            current = connect(self.database_url, autocommit=self.autocommit)
            if self.on_connect is not None:
                self.on_connect(current)
            self._connection = current
        return current

    def close(self) -> None:
        """Close the connection, if open."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


# Locks the ledger depends on are table locks on empty tables of its own, which a role without
# UPDATE, DELETE or TRUNCATE on them cannot take (an advisory lock any role of the database
# can take, e.g. the analytics role). A table lock held in an idle transaction assigns no
# transaction id, so unlike a row lock it holds back no vacuum.
SCHEMA_LOCK_TABLE = "ledger_schema_lock"  # one worker at a time creates tables
RELAY_LEADER_TABLE = "ledger_relay_leader"  # one relay publishes at a time
LOCK_TABLES = (SCHEMA_LOCK_TABLE, RELAY_LEADER_TABLE)
_CREATE_ATTEMPTS = 10


def ensure_lock_table(connection: psycopg.Connection[Any], table: str) -> None:
    """Create the empty lock table `table` unless it exists, in a transaction of its own.

    Workers creating it at the same moment collide in PostgreSQL's catalog (a unique
    violation on pg_type, "type already exists" or "relation already exists": IF NOT EXISTS
    is checked before the catalog row is written); the losers try again and find it there.
    """
    statement = SQL("CREATE TABLE IF NOT EXISTS {} ()").format(Identifier(table))
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            with connection.transaction():
                connection.execute(statement)
            return
        except (
            psycopg.errors.UniqueViolation,
            psycopg.errors.DuplicateObject,
            psycopg.errors.DuplicateTable,
        ):
            if attempt == _CREATE_ATTEMPTS:
                raise


@contextmanager
def schema_lock(connection: psycopg.Connection[Any]) -> Iterator[None]:
    """A transaction on `connection` holding the ledger's schema lock: one worker at a time."""
    ensure_lock_table(connection, SCHEMA_LOCK_TABLE)
    with connection.transaction():
        connection.execute(
            SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(Identifier(SCHEMA_LOCK_TABLE))
        )
        yield


def try_lead(connection: psycopg.Connection[Any], table: str) -> bool:
    """Take the lock `table` stands for, without waiting, in a transaction left open.

    The lock lasts until the transaction ends or the connection dies (a crashed leader's
    lock goes with its connection). `connection` must not be autocommit, and should be
    exempt from idle_in_transaction_session_timeout (see `exempt_from_idle_timeout`).
    """
    try:
        connection.execute(SQL("LOCK TABLE {} IN EXCLUSIVE MODE NOWAIT").format(Identifier(table)))
    except psycopg.errors.LockNotAvailable:
        connection.rollback()
        return False
    return True


def exempt_from_idle_timeout(connection: psycopg.Connection[Any]) -> None:
    """Let the session stay idle in a transaction (it holds a lock) whatever the server's default."""
    connection.execute("SET idle_in_transaction_session_timeout = 0")
    connection.commit()


def create_tables(connection: psycopg.Connection[Any], *statements: str) -> None:
    """Run `statements` (CREATE TABLE IF NOT EXISTS ...) in one transaction, one worker at a time.

    PostgreSQL refuses the same table created by concurrent transactions (duplicate pg_type),
    so workers starting together take turns on the schema lock.
    """
    with schema_lock(connection):
        for statement in statements:
            connection.execute(statement)


class EventsWakeup:
    """Waits until a transaction that stored events commits (LISTEN/NOTIFY), or a timeout.

    The relay waits on it when it has published everything, instead of polling the
    notification log. A lost connection only makes the wait a plain sleep until it is back.
    """

    def __init__(self, database_url: str) -> None:
        self._database = Reconnecting(database_url, autocommit=True, on_connect=_listen)

    def wait(self, timeout_s: float) -> bool:
        """Answer True as soon as events were committed since the last wait, False after
        `timeout_s` without."""
        started = time.monotonic()
        try:
            connection = self._database.get()
            woken = any(True for _ in connection.notifies(timeout=timeout_s, stop_after=1))
            for _ in connection.notifies(timeout=0):  # one wake-up for all committed so far
                pass
            return woken
        except psycopg.Error:
            self._database.close()
            time.sleep(max(0.0, timeout_s - (time.monotonic() - started)))
            return False

    def close(self) -> None:
        """Stop listening."""
        self._database.close()


def _listen(connection: psycopg.Connection[Any]) -> None:
    connection.execute(LISTEN_EVENTS)


def redact(database_url: str) -> str:
    """The URL with its password hidden, fit for logs; it keeps sslmode, which says whether TLS is on."""
    params = conninfo_to_dict(database_url)
    host = params.get("host") or "localhost"
    redacted = f"postgresql://{params.get('user') or ''}@{host}:{params.get('port') or 5432}/{params.get('dbname') or ''}"
    return redacted + (f"?sslmode={params['sslmode']}" if params.get("sslmode") else "")
