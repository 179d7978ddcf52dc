# alarmd: `make demo` runs the daemon on the sample alarms, `make test` runs the
# tests. Both start the local Kafka and PostgreSQL themselves.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ALARMD := $(BIN)/alarmd
DATA ?= ../shared/data/alarms-sample.jsonl
ALARMD_EMAIL_ALARM_TYPES ?= ["BCF FAULTY","WCDMA BASE STATION OUT OF USE","Mains Input Out of Range","GSM Cell out of Service"]
export ALARMD_EMAIL_ALARM_TYPES
# The demo's email sidecar sends to a local sink (scripts/smtp_sink.py) and
# waits only briefly for each group's siblings.
SMTP_SINK_PORT ?= 12525
NOTIFY_DEMO_ENV = ALARMD_SMTP_PORT=$(SMTP_SINK_PORT) ALARMD_SMTP_SECURITY=none \
	ALARMD_NOTIFY_GROUP_WAIT_S=1 ALARMD_NOTIFY_GROUP_INTERVAL_S=1 \
	ALARMD_NOTIFY_HTTP_PORT=0 ALARMD_NOTIFY_SWEEP_MIN_AGE_S=0

# Connection settings written by `make services-up`; variables already in the
# environment win.
WITH_SERVICES = set -a; . .local/services.env; set +a;

.PHONY: help install services-up services-down services-reset demo test test-unit \
        test-integration chaos helm helm-test bench lint clean

help:
	@echo "make demo        run the daemon and the email sidecar on $(DATA), print the status"
	@echo "make test        unit and integration tests (starts Kafka and PostgreSQL)"
	@echo "make services-up / services-down / services-reset"
	@echo "make chaos [ALARMS=N KILLS=K]  fault-injection run with a zero-loss report"
	@echo "make helm-test   the chart and Dockerfile tier (tests/helm; builds the pinned helm)"
	@echo "make bench       the side-by-side benchmark [ALARMS=50000 BACKLOG=1000000]"
	@echo "make lint        ruff (check and format)"

$(BIN)/alarmd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/alarmd

services-up:
	scripts/services.sh up

services-down:
	scripts/services.sh down

services-reset:
	scripts/services.sh reset

demo: install
	@test -f "$(DATA)" || { echo "make demo: $(DATA) not found; pass DATA=file.jsonl"; exit 2; }
	scripts/services.sh reset
	scripts/services.sh up
	$(WITH_SERVICES) $(ALARMD) migrate
	$(WITH_SERVICES) $(ALARMD) topics create
	$(WITH_SERVICES) $(ALARMD) produce "$(DATA)"
	$(WITH_SERVICES) ALARMD_HTTP_PORT=0 $(ALARMD) run --exit-when-idle 5
	rm -rf .local/mail
	@$(BIN)/python scripts/smtp_sink.py --port $(SMTP_SINK_PORT) --dir .local/mail \
	  > .local/smtp_sink.log 2>&1 & echo $$! > .local/smtp_sink.pid
	@for _ in $$(seq 1 40); do \
	  grep -q '^smtp sink on' .local/smtp_sink.log 2>/dev/null && exit 0; \
	  kill -0 $$(cat .local/smtp_sink.pid) 2>/dev/null || { cat .local/smtp_sink.log; exit 1; }; \
	  sleep 0.25; \
	done; echo "make demo: the SMTP sink did not start; see .local/smtp_sink.log"; exit 1
	$(WITH_SERVICES) $(NOTIFY_DEMO_ENV) $(ALARMD) notify --exit-when-idle 5; \
	  rc=$$?; kill $$(cat .local/smtp_sink.pid); rm -f .local/smtp_sink.pid; exit $$rc
	@ls .local/mail | wc -l | xargs printf 'make demo: %s emails in .local/mail\n'
	@$(WITH_SERVICES) $(ALARMD) status --json

test: install services-up
	$(WITH_SERVICES) $(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q tests/unit

test-integration: install services-up
	$(WITH_SERVICES) $(BIN)/pytest -q tests/integration

# The fault-injection run (tests/chaos): it restarts and freezes the local
# services, so it runs against those of scripts/services.sh only.
chaos: install services-up
	$(WITH_SERVICES) $(BIN)/python -m tests.chaos --alarms $(or $(ALARMS),100000) \
	  --kills $(or $(KILLS),10)

# The pinned helm, built from the Go module proxy into .cache/ when missing.
helm:
	scripts/helm.sh

helm-test: install helm services-up
	$(WITH_SERVICES) $(BIN)/pytest -q tests/helm

# The benchmark (bench/, README "Benchmark"): five variants on ALARMS alarms,
# interleaved REPETITIONS times, then the daemon's latency and its memory while
# a BACKLOG drains. Results go to BENCH_OUT (bench/ holds the committed run).
# ALARMS is shared with `make chaos`, so each target keeps its own default.
bench: install services-up
	$(WITH_SERVICES) $(BIN)/python -m bench --alarms $(or $(ALARMS),50000) \
	  --backlog $(or $(BACKLOG),1000000) --repetitions $(or $(REPETITIONS),3) \
	  --latency-s $(or $(LATENCY_S),30) --out $(or $(BENCH_OUT),bench)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
