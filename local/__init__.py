"""Embedded PostgreSQL and Kafka brokers for development, tests and benchmarks."""
