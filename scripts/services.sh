#!/usr/bin/env bash
# Starts and stops the local Kafka (single node, KRaft) and PostgreSQL that the
# demo and the integration tests run against. Both listen on loopback only, on
# non-default ports, with their data under .local/. Every action is idempotent.
#
#   scripts/services.sh up | down | reset | status
#   scripts/services.sh postgres-stop | postgres-start | kafka-stop | kafka-start
#   scripts/services.sh postgres-freeze | postgres-thaw
#
# reset stops both and deletes their data. The -stop/-start pairs exist for the
# integration tests that take a service away mid-run. postgres-freeze stops this
# cluster's postmaster and backends with SIGSTOP (their TCP connections stay
# open, so queries hang, as on a hung server); postgres-thaw sends SIGCONT.
#
# `up` writes the connection settings to .local/services.env. Settings already
# present in the environment (ALARMD_KAFKA_BOOTSTRAP_SERVERS,
# ALARMD_DATABASE_URL) win: the matching local service is not started.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCAL="$ROOT/.local"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
KAFKA_LIBS="$ROOT/.cache/kafka-$KAFKA_VERSION/libs"
KAFKA_PORT=${ALARMD_LOCAL_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
PG_PORT=${ALARMD_LOCAL_PG_PORT:-15432}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_DATA="$LOCAL/postgres/data"
KAFKA_DIR="$LOCAL/kafka"

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until `port` listens; fails at once when process `pid` (if given) dies.
wait_for_port() {
  local port=$1 what=$2 logfile=$3 pid=${4:-}
  for _ in $(seq 1 120); do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$logfile" >&2 || true
      die "$what exited while starting; its log is $logfile (last lines above)"
    fi
    port_open "$port" && return 0
    sleep 0.5
  done
  tail -n 40 "$logfile" >&2 || true
  die "$what did not listen on 127.0.0.1:$port within 60 s; its log is $logfile"
}

# A port that answers although our service is not running belongs to someone
# else: using it would silently point alarmd at another team's server.
refuse_taken_port() {
  local port=$1 what=$2 variable=$3
  if port_open "$port"; then
    die "port $port is already in use by another process, so the local $what cannot listen there; choose a free port with $variable=<port>"
  fi
}

# --- PostgreSQL ---------------------------------------------------------------

pg_up() {
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin); install postgresql or set PG_BIN"
  mkdir -p "$LOCAL/postgres"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $PG_DATA"
    run_as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U alarmd --auth=trust -E UTF8 --locale=C.UTF-8 >"$LOCAL/postgres/initdb.log" 2>&1 \
      || { cat "$LOCAL/postgres/initdb.log" >&2; die "initdb failed"; }
  fi
  if run_as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    log "PostgreSQL already running on port $PG_PORT"
  else
    refuse_taken_port "$PG_PORT" PostgreSQL ALARMD_LOCAL_PG_PORT
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    run_as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOCAL/postgres/server.log" -w -t 60 \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $LOCAL/postgres -c max_connections=200 -c fsync=on" start >/dev/null
  fi
  if [ "$(run_as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U alarmd -d postgres -tAc "select 1 from pg_database where datname='alarmd'")" != 1 ]; then
    run_as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U alarmd alarmd
  fi
}

pg_down() {
  if [ -f "$PG_DATA/PG_VERSION" ] && run_as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    log "stopping PostgreSQL"
    run_as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
  fi
}

# PostgreSQL refuses to run as root; on a root shell (CI) it runs as `nobody`
# over a data folder that user owns.
run_as_pg() {
  if [ "$(id -u)" = 0 ]; then
    chown -R nobody "$LOCAL/postgres" 2>/dev/null || true
    chmod o+x "$LOCAL" "$ROOT" 2>/dev/null || true
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
  else
    "$@"
  fi
}

# The postmaster of this cluster (from its pid file) and its children, by PID:
# never another cluster's processes.
pg_pids() {
  local pidfile="$PG_DATA/postmaster.pid" postmaster
  [ -f "$pidfile" ] || die "PostgreSQL is not running here (no $pidfile)"
  postmaster=$(head -n 1 "$pidfile")
  kill -0 "$postmaster" 2>/dev/null || die "PostgreSQL's postmaster $postmaster (from $pidfile) is not running"
  echo "$postmaster"
  ps -o pid= --ppid "$postmaster" || true
}

pg_signal() {
  local signal=$1 pids
  pids=$(pg_pids)
  if [ "$signal" = STOP ]; then
    # The postmaster first, so it forks no backend that would escape the freeze.
    # shellcheck disable=SC2086
    kill -STOP $pids
  else
    # shellcheck disable=SC2086
    kill -CONT $(echo $pids | tr ' ' '\n' | tac)
  fi
  log "PostgreSQL processes sent SIG$signal: $(echo $pids | wc -w)"
}

# --- Kafka ----------------------------------------------------------------------

kafka_fetch() {
  if [ ! -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    log "resolving Apache Kafka $KAFKA_VERSION from Maven Central"
    mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS" \
      || die "Maven could not resolve Kafka $KAFKA_VERSION; check that Maven Central is reachable"
  fi
}

kafka_java() {
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*" "$@"
}

kafka_up() {
  command -v java >/dev/null || die "java not found; Kafka needs Java 17 or newer"
  kafka_fetch
  mkdir -p "$KAFKA_DIR"
  if [ -f "$KAFKA_DIR/kafka.pid" ] && kill -0 "$(cat "$KAFKA_DIR/kafka.pid")" 2>/dev/null; then
    log "Kafka already running on port $KAFKA_PORT"
    return
  fi
  cat >"$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
PROPS
  cat >"$KAFKA_DIR/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $KAFKA_DIR/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
PROPS
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    log "formatting KRaft storage in $KAFKA_DIR/data"
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid)
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/format.log" >&2; die "formatting Kafka storage failed"; }
  fi
  refuse_taken_port "$KAFKA_PORT" Kafka ALARMD_LOCAL_KAFKA_PORT
  refuse_taken_port "$KAFKA_CONTROLLER_PORT" "Kafka controller" ALARMD_LOCAL_KAFKA_PORT
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/stdout.log" 2>&1 &
  echo $! >"$KAFKA_DIR/kafka.pid"
  wait_for_port "$KAFKA_PORT" Kafka "$KAFKA_DIR/server.log" "$(cat "$KAFKA_DIR/kafka.pid")"
}

kafka_down() {
  local pidfile="$KAFKA_DIR/kafka.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping Kafka"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# --- settings file ---------------------------------------------------------------

write_env() {
  mkdir -p "$LOCAL"
  {
    echo "# Written by scripts/services.sh; source it or let the Makefile include it."
    echo "ALARMD_KAFKA_BOOTSTRAP_SERVERS=${ALARMD_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
    echo "ALARMD_DATABASE_URL=${ALARMD_DATABASE_URL:-postgresql+psycopg2://alarmd@127.0.0.1:$PG_PORT/alarmd}"
  } >"$LOCAL/services.env"
  log "connection settings written to .local/services.env"
}

case "${1:-}" in
  up)
    [ -n "${ALARMD_DATABASE_URL:-}" ] && log "ALARMD_DATABASE_URL is set; not starting a local PostgreSQL" || pg_up
    [ -n "${ALARMD_KAFKA_BOOTSTRAP_SERVERS:-}" ] && log "ALARMD_KAFKA_BOOTSTRAP_SERVERS is set; not starting a local Kafka" || kafka_up
    write_env
    ;;
  down)
    kafka_down
    pg_down
    ;;
  reset)
    kafka_down; pg_down
    rm -rf "$KAFKA_DIR/data" "$LOCAL/postgres"
    log "local service data removed"
    ;;
  postgres-stop)
    pg_down
    ;;
  postgres-start)
    pg_up
    ;;
  postgres-freeze)
    pg_signal STOP
    ;;
  postgres-thaw)
    pg_signal CONT
    ;;
  kafka-stop)
    kafka_down
    ;;
  kafka-start)
    kafka_up
    ;;
  status)
    port_open "$PG_PORT" && log "PostgreSQL up on $PG_PORT" || log "PostgreSQL down"
    port_open "$KAFKA_PORT" && log "Kafka up on $KAFKA_PORT" || log "Kafka down"
    ;;
  *)
    die "usage: scripts/services.sh up|down|reset|status|postgres-stop|postgres-start|postgres-freeze|postgres-thaw|kafka-stop|kafka-start"
    ;;
esac
