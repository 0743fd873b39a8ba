"""Security settings: Kafka SASL and TLS options, PostgreSQL TLS parameters, secrets kept out of logs."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest
import structlog
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from structlog.testing import capture_logs

from infra.config import ConfigError, KafkaSecurity, Settings
from infra.kafka.kafka_python import client_options
from infra.logs import MASK, MaskSecrets, mask_secrets, redact_secrets
from infra.postgres import EXTRA_CONNINFO, LedgerPostgresFactory, event_store_env, redact

DATABASE_URL = "postgresql://ledger:db-s3cret@db.example:5433/ledger"
TLS_URL = (
    f"{DATABASE_URL}?sslmode=verify-full&sslrootcert=/etc/ledger/ca.pem"
    "&sslcert=/etc/ledger/client.pem&sslkey=/etc/ledger/client.key"
)


@pytest.fixture(name="pem")
def fixture_pem(tmp_path: Path) -> dict[str, str]:
    """Paths of a CA bundle, a client certificate and a key (the files exist; contents unused)."""
    paths = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
        paths[name] = str(path)
    return paths


def kafka_env(**variables: str) -> dict[str, str]:
    """An environment with the given LEDGER_KAFKA_<NAME> variables."""
    return {f"LEDGER_KAFKA_{name.upper()}": value for name, value in variables.items()}


class TestClientOptions:
    """client_options maps the settings to kafka-python's options, per security protocol."""

    def test_plaintext_passes_no_credentials_and_no_files(self) -> None:
        """PLAINTEXT: servers and protocol only."""
        assert client_options("a:9092,b:9092", KafkaSecurity()) == {
            "bootstrap_servers": ["a:9092", "b:9092"],
            "security_protocol": "PLAINTEXT",
        }

    def test_ssl_passes_the_ca_and_the_client_certificate(self, pem: dict[str, str]) -> None:
        """SSL: the CA bundle, the client certificate and its key; no SASL options."""
        security = KafkaSecurity.from_env(
            kafka_env(
                security_protocol="SSL",
                ssl_cafile=pem["ca"],
                ssl_certfile=pem["cert"],
                ssl_keyfile=pem["key"],
            )
        )
        assert client_options("k:9093", security) == {
            "bootstrap_servers": ["k:9093"],
            "security_protocol": "SSL",
            "ssl_cafile": pem["ca"],
            "ssl_certfile": pem["cert"],
            "ssl_keyfile": pem["key"],
        }

    def test_sasl_plaintext_passes_the_credentials(self) -> None:
        """SASL_PLAINTEXT with SCRAM: mechanism and credentials in the sasl_plain_* options."""
        security = KafkaSecurity.from_env(
            kafka_env(
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_username="ledger",
                sasl_password="kafka-s3cret",
            )
        )
        assert client_options("k:9094", security) == {
            "bootstrap_servers": ["k:9094"],
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "ledger",
            "sasl_plain_password": "kafka-s3cret",
        }

    def test_sasl_ssl_passes_credentials_and_files(self, pem: dict[str, str]) -> None:
        """SASL_SSL: the credentials and the CA bundle together."""
        security = KafkaSecurity.from_env(
            kafka_env(
                security_protocol="sasl_ssl",
                sasl_mechanism="plain",
                sasl_username="ledger",
                sasl_password="kafka-s3cret",
                ssl_cafile=pem["ca"],
            )
        )
        assert client_options("k:9095", security) == {
            "bootstrap_servers": ["k:9095"],
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "ledger",
            "sasl_plain_password": "kafka-s3cret",
            "ssl_cafile": pem["ca"],
        }

    @pytest.mark.parametrize("client", [KafkaProducer, KafkaConsumer, KafkaAdminClient])
    def test_every_option_is_one_the_client_knows(
        self, client: type[object], pem: dict[str, str]
    ) -> None:
        """kafka-python's clients accept every option name client_options produces."""
        security = KafkaSecurity.from_env(
            kafka_env(
                security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-256",
                sasl_username="u",
                sasl_password="p",
                ssl_cafile=pem["ca"],
                ssl_certfile=pem["cert"],
                ssl_keyfile=pem["key"],
            )
        )
        known = set(client.DEFAULT_CONFIG)  # type: ignore[attr-defined]
        assert set(client_options("k:9092", security)) - known == set()


class TestKafkaSecuritySettings:
    """LEDGER_KAFKA_* security variables are checked when read, with messages that say what to fix."""

    def test_unset_means_plaintext(self) -> None:
        """No variable: PLAINTEXT, nothing else."""
        assert KafkaSecurity.from_env({}) == KafkaSecurity()

    @pytest.mark.parametrize(
        ("variables", "message"),
        [
            ({"security_protocol": "TLS"}, "LEDGER_KAFKA_SECURITY_PROTOCOL must be one of"),
            ({"security_protocol": "SASL_SSL"}, "needs LEDGER_KAFKA_SASL_MECHANISM"),
            (
                {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"},
                "LEDGER_KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
            ),
            (
                {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
                "needs LEDGER_KAFKA_SASL_USERNAME and LEDGER_KAFKA_SASL_PASSWORD",
            ),
            (
                {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
                "needs LEDGER_KAFKA_SASL_PASSWORD",
            ),
            ({"sasl_mechanism": "PLAIN"}, "PLAINTEXT does not use SASL"),
            ({"ssl_cafile": "/etc/hosts"}, "PLAINTEXT does not use TLS"),
            (
                {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
                "LEDGER_KAFKA_SSL_CAFILE names /nonexistent/ca.pem, which does not exist",
            ),
            (
                {"security_protocol": "SSL", "ssl_certfile": "/nonexistent/cert.pem"},
                "LEDGER_KAFKA_SSL_CERTFILE names /nonexistent/cert.pem",
            ),
        ],
    )
    def test_unusable_combinations_are_refused(
        self, variables: dict[str, str], message: str
    ) -> None:
        """Each unusable setting is a ConfigError naming the variables involved."""
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(kafka_env(**variables))

    def test_a_key_without_its_certificate_is_refused(self, pem: dict[str, str]) -> None:
        """LEDGER_KAFKA_SSL_KEYFILE alone is refused: kafka-python loads the key with its certificate."""
        with pytest.raises(ConfigError, match="needs LEDGER_KAFKA_SSL_CERTFILE"):
            KafkaSecurity.from_env(kafka_env(security_protocol="SSL", ssl_keyfile=pem["key"]))

    def test_a_missing_key_file_is_refused(self, pem: dict[str, str]) -> None:
        """A key file that does not exist is named in the error."""
        with pytest.raises(ConfigError, match="LEDGER_KAFKA_SSL_KEYFILE names /nonexistent/k"):
            KafkaSecurity.from_env(
                kafka_env(
                    security_protocol="SSL",
                    ssl_certfile=pem["cert"],
                    ssl_keyfile="/nonexistent/k.pem",
                )
            )


class TestPostgresTls:
    """TLS parameters of the database URL reach the event store's connection pool."""

    def test_the_event_store_settings_carry_the_tls_parameters(self) -> None:
        """event_store_env keeps sslmode, sslrootcert, sslcert and sslkey in one connection string."""
        env = event_store_env(TLS_URL)
        assert env["PERSISTENCE_MODULE"] == "infra.postgres:LedgerPostgresFactory"
        extra = dict(item.split("=", 1) for item in env[EXTRA_CONNINFO].split())
        assert extra == {
            "sslmode": "verify-full",
            "sslrootcert": "/etc/ledger/ca.pem",
            "sslcert": "/etc/ledger/client.pem",
            "sslkey": "/etc/ledger/client.key",
        }

    def test_the_pool_connects_with_the_tls_parameters(self) -> None:
        """The factory adds them to the pool's connection arguments (nothing connects here)."""
        factory = LedgerPostgresFactory(event_store_env(TLS_URL))
        try:
            kwargs = factory.datastore.pool.kwargs
        finally:
            factory.close()
        assert isinstance(kwargs, dict)
        assert {k: kwargs[k] for k in ("host", "port", "dbname", "user")} == {
            "host": "db.example",
            "port": "5433",
            "dbname": "ledger",
            "user": "ledger",
        }
        assert kwargs["sslmode"] == "verify-full"
        assert kwargs["sslrootcert"] == "/etc/ledger/ca.pem"
        assert kwargs["sslcert"] == "/etc/ledger/client.pem"
        assert kwargs["sslkey"] == "/etc/ledger/client.key"

    def test_without_tls_parameters_the_pool_gets_none(self) -> None:
        """A URL without them leaves libpq's defaults (and any PGSSL* variable) in charge."""
        env = event_store_env(DATABASE_URL)
        assert env[EXTRA_CONNINFO] == ""
        factory = LedgerPostgresFactory(env)
        try:
            kwargs = factory.datastore.pool.kwargs
        finally:
            factory.close()
        assert isinstance(kwargs, dict)
        assert not [name for name in kwargs if name.startswith("ssl")]

    def test_the_process_environment_is_left_alone(self) -> None:
        """No PGSSL* variable is set, so child processes and other connections are unaffected."""
        before = {k: v for k, v in os.environ.items() if k.startswith("PG")}
        LedgerPostgresFactory(event_store_env(TLS_URL)).close()
        assert {k: v for k, v in os.environ.items() if k.startswith("PG")} == before

    def test_redact_hides_the_password_and_shows_sslmode(self) -> None:
        """The log form of the URL keeps whether TLS is required, never the password."""
        assert redact(TLS_URL) == "postgresql://ledger@db.example:5433/ledger?sslmode=verify-full"


class TestMaskSecrets:
    """mask_secrets hides passwords inside free text."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "could not connect to postgresql://ledger:db-s3cret@db:5432/ledger",
                "could not connect to postgresql://ledger:***@db:5432/ledger",
            ),
            ("host=db user=ledger password=db-s3cret", "host=db user=ledger password=***"),
            ("password='db s3cret' dbname=ledger", "password='***' dbname=ledger"),
            ("{'sasl_plain_password': 'kafka-s3cret'}", "{'sasl_plain_password': '***'}"),
            ("postgresql://ledger@db/ledger?sslmode=require", None),
            ("postgresql://postgres:@/ledger?host=/tmp/pg", None),
            ("password authentication failed for user ledger", None),
        ],
    )
    def test_masks_secrets_and_nothing_else(self, text: str, expected: str | None) -> None:
        """Passwords become ***; text without one is unchanged."""
        assert mask_secrets(text) == (text if expected is None else expected)


class TestRedactSecretsProcessor:
    """The structlog processor masks secret keys and secrets inside string values."""

    def test_keys_naming_a_secret_are_masked(self) -> None:
        """Values of keys containing password, secret or token are replaced whole."""
        with capture_logs(processors=[redact_secrets]) as logs:
            structlog.get_logger().info(
                "connecting",
                sasl_password="kafka-s3cret",
                client_secret=42,
                API_TOKEN="t0k3n",
                user="ledger",
                missing_password=None,
            )
        assert logs == [
            {
                "event": "connecting",
                "log_level": "info",
                "sasl_password": MASK,
                "client_secret": MASK,
                "API_TOKEN": MASK,
                "user": "ledger",
                "missing_password": None,
            }
        ]

    def test_urls_in_values_lose_their_password(self) -> None:
        """A database URL in any string value, nested ones included, is masked."""
        with capture_logs(processors=[redact_secrets]) as logs:
            structlog.get_logger().warning(
                f"lost {DATABASE_URL}",
                database=DATABASE_URL,
                tried=[DATABASE_URL],
                config={"url": DATABASE_URL, "password": "db-s3cret"},
            )
        assert "db-s3cret" not in repr(logs)
        assert logs[0]["database"] == "postgresql://ledger:***@db.example:5433/ledger"
        assert logs[0]["config"]["password"] == MASK

    def test_tracebacks_are_masked(self) -> None:
        """An exception whose message holds the URL is masked once formatted."""
        processors = [structlog.processors.format_exc_info, redact_secrets]
        with capture_logs(processors=processors) as logs:
            try:
                raise ConnectionError(f"cannot reach {DATABASE_URL}")
            except ConnectionError:
                structlog.get_logger().exception("loop.failed")
        assert "cannot reach postgresql://ledger:***@" in logs[0]["exception"]
        assert "db-s3cret" not in logs[0]["exception"]

    def test_library_log_records_are_masked(self) -> None:
        """Records of the standard logging module (psycopg_pool, kafka-python) are masked too."""
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(MaskSecrets())
        library = logging.getLogger("tests.library")
        library.addHandler(handler)
        try:
            library.warning("error connecting to %s", DATABASE_URL)
        finally:
            library.removeHandler(handler)
        assert (
            stream.getvalue()
            == "error connecting to postgresql://ledger:***@db.example:5433/ledger\n"
        )


class TestReprs:
    """Settings and KafkaSecurity can be printed or logged without their secrets."""

    def test_settings_repr_hides_both_passwords(self, pem: dict[str, str]) -> None:
        """Neither the database password nor the SASL password appears."""
        settings = Settings.from_env(
            {
                "LEDGER_DATABASE_URL": DATABASE_URL,
                **kafka_env(
                    security_protocol="SASL_SSL",
                    sasl_mechanism="PLAIN",
                    sasl_username="ledger",
                    sasl_password="kafka-s3cret",
                    ssl_cafile=pem["ca"],
                ),
            }
        )
        shown = repr(settings)
        assert "db-s3cret" not in shown
        assert "kafka-s3cret" not in shown
        assert "postgresql://ledger:***@db.example:5433/ledger" in shown
        assert "sasl_username='ledger'" in shown

    def test_kafka_security_repr_leaves_the_password_out(self) -> None:
        """KafkaSecurity's repr has no password field at all."""
        security = KafkaSecurity("SASL_SSL", "PLAIN", "ledger", "kafka-s3cret")
        assert "kafka-s3cret" not in repr(security)
        assert "sasl_password" not in repr(security)
