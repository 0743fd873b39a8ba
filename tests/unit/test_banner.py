"""What `ledger run` tells a person at a terminal when it starts."""

from __future__ import annotations

from infra.kafka import clients
from runtime.cli import banner
from runtime.runner import Endpoints


class TestBanner:
    """The banner says where the servers are, the topics, how to send and how to stop."""

    def test_it_names_the_servers_topics_and_the_way_out(self) -> None:
        """Database (without its password), broker, topics, a send example, Ctrl-C."""
        where = Endpoints(
            "postgresql://ledger:s3cret@db.example:5432/ledger",
            clients("broker.example:9092"),
            "cluster-7",
        )
        text = banner(where)
        assert "s3cret" not in text
        assert "postgresql://ledger@db.example:5432/ledger" in text
        assert "broker.example:9092 (cluster cluster-7)" in text
        assert "billing.commands" in text and "billing.command-results" in text
        assert "ledger send OpenAccount" in text
        assert "Ctrl-C" in text
