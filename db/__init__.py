"""PostgreSQL: the tables (models.py), their migrations (migrations/), the engine
(engine.py) and the per-batch writes of the daemon (events.py, outbox.py)."""
