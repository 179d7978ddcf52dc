"""Writing to Kafka: the outbox publisher and `alarmd produce`."""
