"""The Kafka client factory: LEDGER_KAFKA_CLIENT picks the library; librdkafka's options."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import infra.kafka
from infra.config import ConfigError, KafkaSecurity, Settings
from infra.kafka import clients
from infra.kafka.kafka_python import KafkaPythonConsumer, KafkaPythonProducer
from infra.kafka.protocols import MAX_REQUEST_BYTES

# Nothing listens on the discard port: building a librdkafka client never blocks on it.
NOWHERE = "127.0.0.1:9"


@pytest.fixture(name="confluent")
def fixture_confluent():  # type: ignore[no-untyped-def]
    """The confluent-kafka implementations (skipped where the extra [fast] is not installed)."""
    pytest.importorskip("confluent_kafka")
    from infra.kafka import confluent

    return confluent


@pytest.fixture(name="pem")
def fixture_pem(tmp_path: Path) -> dict[str, str]:
    """Paths of a CA bundle, a client certificate and a key (the files exist; contents unused)."""
    paths = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
        paths[name] = str(path)
    return paths


def security(**variables: str) -> KafkaSecurity:
    """KafkaSecurity from the given LEDGER_KAFKA_<NAME> variables."""
    return KafkaSecurity.from_env(
        {f"LEDGER_KAFKA_{name.upper()}": value for name, value in variables.items()}
    )


class TestKafkaClientSetting:
    """LEDGER_KAFKA_CLIENT names the client library: kafka-python unless set."""

    def test_unset_means_kafka_python(self) -> None:
        """Without the variable the clients are kafka-python's."""
        assert Settings.from_env({}).kafka_client == "kafka-python"

    def test_confluent_kafka_in_any_case(self) -> None:
        """The name is read in any letter case."""
        env = {"LEDGER_KAFKA_CLIENT": "Confluent-Kafka"}
        assert Settings.from_env(env).kafka_client == "confluent-kafka"

    def test_an_unknown_library_is_refused(self) -> None:
        """Another name is a ConfigError that lists the two known."""
        with pytest.raises(ConfigError, match="LEDGER_KAFKA_CLIENT must be one of kafka-python"):
            Settings.from_env({"LEDGER_KAFKA_CLIENT": "aiokafka"})


class TestFactory:
    """The factory builds every client on the library the settings name."""

    def test_kafka_python_by_default(self) -> None:
        """Default settings give kafka-python's producer and consumer."""
        library = clients(NOWHERE).library
        assert (library.producer, library.consumer) == (KafkaPythonProducer, KafkaPythonConsumer)

    def test_confluent_kafka_when_named(self, confluent) -> None:  # type: ignore[no-untyped-def]
        """LEDGER_KAFKA_CLIENT=confluent-kafka gives librdkafka's four clients."""
        library = clients(NOWHERE, Settings(None, None, kafka_client="confluent-kafka")).library
        assert (library.producer, library.consumer, library.reader, library.admin) == (
            confluent.ConfluentProducer,
            confluent.ConfluentConsumer,
            confluent.ConfluentReader,
            confluent.ConfluentAdmin,
        )

    def test_a_missing_library_says_which_extra_to_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without confluent-kafka installed the factory refuses at once, naming the extra."""
        monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # import fails as if absent
        monkeypatch.delitem(sys.modules, "infra.kafka.confluent", raising=False)
        monkeypatch.delattr(infra.kafka, "confluent", raising=False)
        settings = Settings(None, None, kafka_client="confluent-kafka")
        with pytest.raises(ConfigError, match=r"billing-ledger\[fast\]"):
            clients(NOWHERE, settings)


class TestConfluentSecurityOptions:
    """client_config maps the security settings to librdkafka's names, per protocol."""

    def test_plaintext_passes_no_credentials_and_no_files(self, confluent) -> None:  # type: ignore[no-untyped-def]
        """PLAINTEXT: servers and protocol only."""
        assert confluent.client_config("a:9092,b:9092", KafkaSecurity()) == {
            "bootstrap.servers": "a:9092,b:9092",
            "security.protocol": "plaintext",
        }

    def test_ssl_passes_the_ca_the_certificate_and_its_key(self, confluent, pem) -> None:  # type: ignore[no-untyped-def]
        """SSL: the CA bundle, the client certificate and its key; no SASL options."""
        given = security(
            security_protocol="SSL",
            ssl_cafile=pem["ca"],
            ssl_certfile=pem["cert"],
            ssl_keyfile=pem["key"],
        )
        assert confluent.client_config("k:9093", given) == {
            "bootstrap.servers": "k:9093",
            "security.protocol": "ssl",
            "ssl.ca.location": pem["ca"],
            "ssl.certificate.location": pem["cert"],
            "ssl.key.location": pem["key"],
        }

    def test_a_certificate_without_key_file_holds_the_key(self, confluent, pem) -> None:  # type: ignore[no-untyped-def]
        """A certificate file alone is read for the key too, as kafka-python reads it."""
        given = security(security_protocol="SSL", ssl_certfile=pem["cert"])
        config = confluent.client_config("k:9093", given)
        assert config["ssl.key.location"] == pem["cert"]

    def test_tls_without_a_ca_bundle_trusts_the_system_cas(self, confluent) -> None:  # type: ignore[no-untyped-def]
        """SSL without LEDGER_KAFKA_SSL_CAFILE looks for the system's CAs."""
        config = confluent.client_config("k:9093", security(security_protocol="SSL"))
        assert config["ssl.ca.location"] == "probe"

    def test_sasl_ssl_passes_credentials_and_files(self, confluent, pem) -> None:  # type: ignore[no-untyped-def]
        """SASL_SSL with SCRAM: mechanism, credentials and the CA bundle together."""
        given = security(
            security_protocol="sasl_ssl",
            sasl_mechanism="scram-sha-512",
            sasl_username="ledger",
            sasl_password="kafka-s3cret",
            ssl_cafile=pem["ca"],
        )
        assert confluent.client_config("k:9095", given) == {
            "bootstrap.servers": "k:9095",
            "security.protocol": "sasl_ssl",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "ledger",
            "sasl.password": "kafka-s3cret",
            "ssl.ca.location": pem["ca"],
        }


class TestConfluentClientOptions:
    """The producer and consumer options match what the kafka-python clients promise."""

    def test_the_producer_is_idempotent_with_acks_all(self, confluent) -> None:  # type: ignore[no-untyped-def]
        """Idempotence, acks=all, and kafka-python's request size as the message limit."""
        config = confluent.producer_config(NOWHERE, KafkaSecurity())
        assert (config["enable.idempotence"], config["acks"]) == (True, "all")
        assert config["message.max.bytes"] == MAX_REQUEST_BYTES

    def test_the_consumer_never_commits_nor_creates_topics(self, confluent) -> None:  # type: ignore[no-untyped-def]
        """No automatic commits or offset stores; subscribing creates no topic."""
        config = confluent.consumer_config(NOWHERE, "g", Settings(None, None))
        assert config["group.id"] == "g"
        assert config["enable.auto.commit"] is False
        assert config["enable.auto.offset.store"] is False
        assert config["allow.auto.create.topics"] is False
        assert config["auto.offset.reset"] == "earliest"

    def test_the_poll_interval_is_never_shorter_than_the_session(self, confluent) -> None:  # type: ignore[no-untyped-def]
        """A long session timeout raises max.poll.interval.ms with it, or joins never finish."""
        settings = Settings(None, None, session_timeout_ms=400_000)
        config = confluent.consumer_config(NOWHERE, "g", settings)
        assert config["session.timeout.ms"] == 400_000
        assert config["max.poll.interval.ms"] >= 400_000

    def test_librdkafka_knows_every_option(self, confluent, pem) -> None:  # type: ignore[no-untyped-def]
        """librdkafka builds each client with every option the mapping produces."""
        import confluent_kafka
        from confluent_kafka.admin import AdminClient

        given = security(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="u",
            sasl_password="p",
            ssl_cafile=pem["ca"],
            ssl_certfile=pem["cert"],
            ssl_keyfile=pem["key"],
        )
        settings = Settings(None, None, kafka_security=given)
        # SASL_PLAINTEXT keeps the ssl.* names (an unknown name still fails) without loading
        # the placeholder files.
        plain = {"security.protocol": "sasl_plaintext"}
        producer = confluent_kafka.Producer(confluent.producer_config(NOWHERE, given) | plain)
        producer.close()
        consumer = confluent_kafka.Consumer(
            confluent.consumer_config(NOWHERE, "g", settings) | plain
        )
        consumer.close()
        AdminClient(confluent.client_config(NOWHERE, given) | plain)
        with pytest.raises(confluent_kafka.KafkaException, match="No such configuration"):
            confluent_kafka.Producer({"bootstrap.servers": NOWHERE, "no.such.option": 1})
