"""Command intake: Kafka consumer, Avro decoding, handlers, results and dead letters."""
