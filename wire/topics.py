"""The Kafka topics of the ledger's wire contract."""

from __future__ import annotations

COMMANDS_TOPIC = "billing.commands"
RESULTS_TOPIC = "billing.command-results"
EVENTS_TOPIC = "billing.events"
DEAD_LETTER_TOPIC = "billing.dead-letter"
