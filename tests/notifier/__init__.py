"""Tests of the email sidecar. `test_grouping.py` and `test_render.py` need no
process; the others run the worker in-process against the real Kafka and
PostgreSQL of scripts/services.sh and a real aiosmtpd server with STARTTLS and
AUTH."""
