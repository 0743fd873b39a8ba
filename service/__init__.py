"""The ledger's runtime edges: configuration, Kafka, embedded servers, relay and the `ledger` CLI."""
