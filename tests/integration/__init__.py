"""Integration tier: alarmd against the real Kafka and PostgreSQL that
scripts/services.sh starts. Nothing is mocked and nothing is skipped."""
