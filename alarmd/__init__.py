"""alarmd: carries telecom network alarms from Kafka into PostgreSQL and downstream."""

__version__ = "0.1.0"
