"""The fault-injection run: three daemons and an email sidecar on real Kafka,
PostgreSQL and SMTP, killed, frozen and restarted while they work, then checked
against what was produced. `python -m tests.chaos --help`; `make chaos`."""
