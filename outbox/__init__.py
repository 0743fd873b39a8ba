"""The outbox relay: the event store's notification log to billing.events and billing.command-results."""
