"""The Kafka contract both ways: the Avro codec, event and result records, dead letters, topic names."""
