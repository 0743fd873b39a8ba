"""Read-only access for analytics users: a PostgreSQL role that reads the read models only.

`grant_analytics` gives a login role SELECT on the read-model tables, and on the tables the
ledger's user creates later, and nothing on the event store or the ledger's lock tables, in
one transaction that it checks before committing. The role has a connection limit and
timeouts, and can create nothing (no TEMP either). Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from infra.postgres import LOCK_TABLES, connect, redact
from projections.registry import read_model_tables

# The tables of the read models, readable by analytics users, as the registry lists them.
READ_MODEL_TABLES = read_model_tables()
# Tables analytics users get nothing on: the event store of BillingLedger (the eventsourcing
# library's events and tracking tables, and the batch heads beside them), the relay's positions
# and the lock tables. A table the ledger's user creates later is readable by default: add any
# new non-read-model table here.
PROTECTED_TABLES = (
    "billing_events",
    "billing_tracking",
    "billing_batch_heads",
    "ledger_relay_positions",
    *LOCK_TABLES,
)
# Bounds on what one analytics user can hold: sessions, and how long a statement or an idle
# transaction (which keeps its read locks) may last. Role defaults: a session may SET others.
CONNECTION_LIMIT = 5
ROLE_SETTINGS = {"statement_timeout": "30s", "idle_in_transaction_session_timeout": "60s"}
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@dataclass(frozen=True)
class Grant:
    """What `grant_analytics` left in place."""

    role: str
    created: bool
    database: str
    schema: str
    owner: str  # the ledger's user, whose future tables the role may read
    readable: tuple[str, ...]  # read-model tables the role may SELECT now
    pending: tuple[str, ...]  # read-model tables not created yet, readable once they are
    protected: tuple[str, ...] = PROTECTED_TABLES

    def describe(self) -> str:
        """The grant for people, one fact per line."""
        return "\n".join(
            [
                f"role {self.role}: {'created' if self.created else 'already there'}",
                f"CONNECT on database {self.database}, USAGE on schema {self.schema}",
                f"SELECT on {', '.join(self.readable) or 'no table yet'}",
                *([f"SELECT once created: {', '.join(self.pending)}"] if self.pending else []),
                f"SELECT on the tables {self.owner} creates later in {self.schema}",
                f"nothing on {', '.join(self.protected)}",
                f"CONNECTION LIMIT {CONNECTION_LIMIT}, "
                + ", ".join(f"{name} {value}" for name, value in ROLE_SETTINGS.items()),
                "no CREATE anywhere, no TEMP (revoked from PUBLIC on the database)",
            ]
        )


def grant_analytics(database_url: str, role: str, password: str | None = None) -> Grant:
    """Create `role` if missing (LOGIN NOINHERIT) and make it read the read models only.

    Run as the ledger's database user, the owner of its tables. `password`, when given, is
    set on the role, sent to the server already hashed (SCRAM-SHA-256) so that it never
    appears in the server's statement log.
    """
    if not role:
        raise AnalyticsError("--role must name a role")
    try:
        with connect(database_url) as connection, connection.transaction():
            return _grant(connection, role, password)
    except psycopg.Error as error:
        raise AnalyticsError(f"{redact(database_url)}: {error}") from None


def _grant(connection: psycopg.Connection[Any], role: str, password: str | None) -> Grant:
    owner, database, schema = _one(
        connection, "SELECT current_user::text, current_database()::text, current_schema()::text"
    )
    if schema is None:
        raise AnalyticsError(
            "no schema of the search_path exists: set search_path for the ledger's user"
        )
    tables = _owners(connection, schema)
    _check_tables(tables, owner, schema)
    created = _ensure_role(connection, role, password, owner)
    who = sql.Identifier(role)
    readable = tuple(t for t in READ_MODEL_TABLES if t in tables)
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), who),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), who),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}"
        ).format(sql.Identifier(owner), sql.Identifier(schema), who),
        sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(_tables(schema, PROTECTED_TABLES), who),
        # TEMP is PUBLIC's by default, and a grant to PUBLIC cannot be revoked for one role.
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC, {}").format(
            sql.Identifier(database), who
        ),
        sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(who, sql.Literal(CONNECTION_LIMIT)),
        *(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(
                who, sql.Identifier(name), sql.Literal(value)
            )
            for name, value in ROLE_SETTINGS.items()
        ),
    ]
    if readable:
        # Exactly SELECT, whatever the role held before.
        statements += [
            sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(_tables(schema, readable), who),
            sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(_tables(schema, readable), who),
        ]
    for statement in statements:
        connection.execute(statement)
    _check_privileges(connection, role, schema, readable)
    _check_creates_nothing(connection, role, database, schema)
    pending = tuple(t for t in READ_MODEL_TABLES if t not in tables)
    return Grant(role, created, database, schema, owner, readable, pending)


def _one(
    connection: psycopg.Connection[Any], query: str, params: tuple[Any, ...] | dict[str, Any] = ()
) -> Any:
    row = connection.execute(query, params).fetchone()
    assert row is not None
    return row


def _owners(connection: psycopg.Connection[Any], schema: str) -> dict[str, str]:
    rows = connection.execute(
        "SELECT c.relname::text, pg_get_userbyid(c.relowner)::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)",
        (schema, [*READ_MODEL_TABLES, *PROTECTED_TABLES]),
    ).fetchall()
    return {name: owner for name, owner in rows}


def _check_tables(tables: dict[str, str], owner: str, schema: str) -> None:
    missing = [t for t in PROTECTED_TABLES if t not in tables]
    if missing:
        # Default privileges would make them readable once the ledger creates them.
        raise AnalyticsError(
            f"{', '.join(missing)} not in schema {schema} yet: start the ledger once "
            "(`ledger run`) so that it creates its tables, then grant again"
        )
    foreign = sorted(f"{t} (owned by {o})" for t, o in tables.items() if o != owner)
    if foreign:
        raise AnalyticsError(
            f"{', '.join(foreign)}: run this as the ledger's database user, the owner of its "
            f"tables, not {owner}"
        )


def _ensure_role(
    connection: psycopg.Connection[Any], role: str, password: str | None, owner: str
) -> bool:
    row = connection.execute(
        "SELECT rolsuper, pg_has_role(%s::name, %s::name, 'MEMBER') FROM pg_roles WHERE rolname = %s",
        (role, owner, role),
    ).fetchone()
    if row is not None and (role == owner or row[0] or row[1]):
        raise AnalyticsError(
            f"role {role} is the ledger's user, a superuser or a member of {owner}: "
            "it could write the event store; choose another role"
        )
    attributes: sql.Composable = sql.SQL("")
    if password is not None:
        hashed = connection.pgconn.encrypt_password(
            password.encode(), role.encode(), b"scram-sha-256"
        )
        attributes = sql.SQL(" PASSWORD {}").format(sql.Literal(hashed.decode()))
    if row is None:
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOINHERIT{}").format(sql.Identifier(role), attributes)
        )
        return True
    if password is not None:
        connection.execute(sql.SQL("ALTER ROLE {}{}").format(sql.Identifier(role), attributes))
    return False


def _tables(schema: str, names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(schema, name) for name in names)


def _check_privileges(
    connection: psycopg.Connection[Any], role: str, schema: str, readable: tuple[str, ...]
) -> None:
    """Refuse to commit unless the role reads the read models and nothing else of the ledger's."""
    wrong = []
    for table in (*PROTECTED_TABLES, *readable):
        for privilege in TABLE_PRIVILEGES:
            (has,) = _one(
                connection,
                "SELECT has_table_privilege(%s::name, format('%%I.%%I', %s::text, %s::text)::regclass, %s::text)",
                (role, schema, table, privilege),
            )
            if has != (privilege == "SELECT" and table in readable):
                wrong.append(f"{privilege} {'held' if has else 'missing'} on {table}")
    if wrong:
        raise AnalyticsError(
            f"role {role} would end with {'; '.join(wrong)}, through PUBLIC or another grant: "
            "revoke those first"
        )


def _check_creates_nothing(
    connection: psycopg.Connection[Any], role: str, database: str, schema: str
) -> None:
    """Refuse to commit if the role could create a schema, a table or a temporary table."""
    held = _one(
        connection,
        "SELECT has_database_privilege(%(role)s::name, %(db)s::text, 'CREATE'), "
        "has_database_privilege(%(role)s::name, %(db)s::text, 'TEMPORARY'), "
        "has_schema_privilege(%(role)s::name, %(schema)s::text, 'CREATE'), "
        "(SELECT rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = %(role)s)",
        {"role": role, "db": database, "schema": schema},
    )
    names = (
        f"CREATE on database {database}",
        f"TEMPORARY on database {database} (run as the database's owner)",
        f"CREATE on schema {schema}",
        "CREATEDB or CREATEROLE",
    )
    wrong = [name for name, has in zip(names, held, strict=True) if has]
    if wrong:
        raise AnalyticsError(
            f"role {role} would hold {'; '.join(wrong)}, through PUBLIC or another grant: "
            "revoke those first"
        )


class AnalyticsError(ValueError):
    """The analytics role cannot be set up as asked; the message says why and what to do."""
