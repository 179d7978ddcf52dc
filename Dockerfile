# alarmd's image: one entrypoint, `alarmd`, whose subcommand picks the daemon
# (`run`), the email sidecar (`notify`) or the migration (`migrate`).
#
# The tests lint this file with hadolint (tests/helm/test_dockerfile.py); no
# Docker engine is available to them, so they do not build it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with alarmd and its dependencies, from wheels only ---
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all:
WORKDIR /src
RUN python -m venv /opt/alarmd

COPY pyproject.toml README.md ./
COPY alarmd/ alarmd/
COPY consumer/ consumer/
COPY db/ db/
COPY notifier/ notifier/
COPY producers/ producers/
COPY schemas/ schemas/
COPY templates/ templates/
# templates/ is installed as the package data notifier/templates.
RUN /opt/alarmd/bin/pip install --no-cache-dir --no-compile .

# --- final: the slim base, the virtualenv, a non-root user; no compilers -------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="alarmd" \
      org.opencontainers.image.description="Kafka consumer daemon for telecom alarms, with its email sidecar" \
      org.opencontainers.image.source="https://example.invalid/alarmd"

# A numeric user, so Kubernetes can check runAsNonRoot without /etc/passwd.
RUN groupadd --system --gid 10001 alarmd \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin alarmd

COPY --from=build /opt/alarmd /opt/alarmd

# No .pyc files at run time: the root filesystem is read-only in the chart.
ENV PATH=/opt/alarmd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALARMD_LOG_FORMAT=json

WORKDIR /tmp
USER 10001:10001
# 9400: the daemon's metrics and probes; 9401: the email sidecar's.
EXPOSE 9400 9401

ENTRYPOINT ["alarmd"]
CMD ["run"]
