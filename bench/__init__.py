"""The side-by-side benchmark behind `make bench`: five ways to carry the same
alarms from Kafka into PostgreSQL, measured on the local services."""
