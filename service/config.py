"""Settings from the environment: every LEDGER_* variable the services read, in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

COMMANDS_TOPIC = "billing.commands"
RESULTS_TOPIC = "billing.command-results"
EVENTS_TOPIC = "billing.events"
DEAD_LETTER_TOPIC = "billing.dead-letter"

# Every variable the ledger reads, with its meaning; README.md's configuration table matches it.
VARIABLES: dict[str, str] = {
    "LEDGER_DATABASE_URL": "PostgreSQL URI. Unset: an embedded server is started under LEDGER_HOME.",
    "LEDGER_KAFKA_BOOTSTRAP": "Kafka bootstrap servers, host:port[,host:port]. Unset: an "
    "embedded broker is started on a free loopback port.",
    "LEDGER_HOME": "Folder of the embedded servers' data, logs and state (default ~/.billing-ledger).",
    "LEDGER_TOPIC_PARTITIONS": "Partitions of each topic the ledger creates (default 3).",
    "LEDGER_REPLICATION_FACTOR": "Replication factor of each topic the ledger creates (default 1).",
    "LEDGER_CONSUMER_GROUP": "Consumer group prefix of the ledger's workers (default billing-ledger).",
    "LEDGER_BATCH_SIZE": "Most commands or events handled in one transaction (default 500).",
    "LEDGER_SESSION_TIMEOUT_MS": "Kafka consumer session timeout (default 6000: the embedded "
    "broker joins groups in about half of it).",
    "LEDGER_LOG_LEVEL": "debug, info, warning or error (default info).",
    "LEDGER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default PLAINTEXT).",
    "LEDGER_KAFKA_SASL_MECHANISM": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, with SASL_* protocols.",
    "LEDGER_KAFKA_SASL_USERNAME": "SASL user name.",
    "LEDGER_KAFKA_SASL_PASSWORD": "SASL password (never logged).",
    "LEDGER_KAFKA_SSL_CAFILE": "CA bundle that signs the brokers' certificates.",
}


@dataclass(frozen=True)
class KafkaSecurity:
    """Kafka authentication and encryption settings, passed to every client as they are."""

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None


PLAINTEXT = KafkaSecurity()


@dataclass(frozen=True)
class Settings:
    """What the services are configured with."""

    database_url: str | None
    kafka_bootstrap: str | None
    topic_partitions: int = 3
    replication_factor: int = 1
    consumer_group: str = "billing-ledger"
    batch_size: int = 500
    session_timeout_ms: int = 6000
    log_level: str = "info"
    kafka_security: KafkaSecurity = PLAINTEXT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (the process environment by default)."""
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("LEDGER_DATABASE_URL") or None,
            kafka_bootstrap=env.get("LEDGER_KAFKA_BOOTSTRAP") or None,
            topic_partitions=_positive(env, "LEDGER_TOPIC_PARTITIONS", 3),
            replication_factor=_positive(env, "LEDGER_REPLICATION_FACTOR", 1),
            consumer_group=env.get("LEDGER_CONSUMER_GROUP") or "billing-ledger",
            batch_size=_positive(env, "LEDGER_BATCH_SIZE", 500),
            session_timeout_ms=_positive(env, "LEDGER_SESSION_TIMEOUT_MS", 6000),
            log_level=(env.get("LEDGER_LOG_LEVEL") or "info").lower(),
            kafka_security=KafkaSecurity(
                security_protocol=env.get("LEDGER_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT",
                sasl_mechanism=env.get("LEDGER_KAFKA_SASL_MECHANISM") or None,
                sasl_username=env.get("LEDGER_KAFKA_SASL_USERNAME") or None,
                sasl_password=env.get("LEDGER_KAFKA_SASL_PASSWORD") or None,
                ssl_cafile=env.get("LEDGER_KAFKA_SSL_CAFILE") or None,
            ),
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


class ConfigError(ValueError):
    """A LEDGER_* variable has a value the ledger cannot use."""
