"""Leaf adapters: Kafka clients, PostgreSQL, configuration, logs and crash hooks for tests."""
