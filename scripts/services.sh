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
#
# Beside their plain listeners, both services take secured connections: Kafka a
# SASL_SSL listener (SCRAM-SHA-512) on ALARMD_LOCAL_KAFKA_SASL_SSL_PORT (default:
# the Kafka port + 2), PostgreSQL TLS with a password role allowed only over
# hostssl. A throwaway CA and the passwords are generated into .local/ at the
# first `up`; .local/secured.env says where they are.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCAL="$ROOT/.local"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
KAFKA_LIBS="$ROOT/.cache/kafka-$KAFKA_VERSION/libs"
KAFKA_PORT=${ALARMD_LOCAL_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
KAFKA_SASL_SSL_PORT=${ALARMD_LOCAL_KAFKA_SASL_SSL_PORT:-$((KAFKA_PORT + 2))}
KAFKA_SCRAM_MECHANISM=SCRAM-SHA-512
KAFKA_SCRAM_USER=alarmd
PG_TLS_ROLE=alarmd_tls
PG_PORT=${ALARMD_LOCAL_PG_PORT:-15432}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_DATA="$LOCAL/postgres/data"
KAFKA_DIR="$LOCAL/kafka"
TLS_DIR="$LOCAL/tls"
SECRETS_DIR="$LOCAL/secrets"
KAFKA_PASSWORD_FILE="$SECRETS_DIR/kafka-sasl-password"
PG_PASSWORD_FILE="$SECRETS_DIR/postgres-password"
# PostgreSQL wants its key owned by the user it runs as, so it gets a copy.
PG_TLS_DIR="$LOCAL/postgres/tls"

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

# --- throwaway CA, server certificate and passwords ---------------------------

# A CA and a server certificate for 127.0.0.1 and localhost, made with openssl
# once and again when the certificate is within a day of expiring. Keys are 0600.
tls_up() {
  command -v openssl >/dev/null || die "openssl not found; it makes the local services' throwaway CA"
  mkdir -p "$TLS_DIR"
  if [ -f "$TLS_DIR/server.crt" ] && openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server.crt" >/dev/null 2>&1; then
    return
  fi
  log "generating a throwaway CA and a server certificate in $TLS_DIR"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=alarmd local CA" \
      -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr"
    openssl x509 -req -days 365 -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
      -CAcreateserial -out "$TLS_DIR/server.crt" -extfile <(printf '%s\n' \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth")
    # Kafka's PEM keystore: the private key (PKCS#8), then the certificate chain.
    cat "$TLS_DIR/server.key" "$TLS_DIR/server.crt" "$TLS_DIR/ca.crt" >"$TLS_DIR/kafka-keystore.pem"
  ) >"$TLS_DIR/openssl.log" 2>&1 || { cat "$TLS_DIR/openssl.log" >&2; die "openssl could not make the local certificates"; }
  rm -f "$TLS_DIR/server.csr"
  chmod 0644 "$TLS_DIR/ca.crt" "$TLS_DIR/server.crt"
}

# Prints the password in `file`, creating it (random, 0600) on first use.
secret() {
  local file=$1
  mkdir -p "$SECRETS_DIR"
  chmod 0700 "$SECRETS_DIR"
  if [ ! -s "$file" ]; then
    (umask 077; openssl rand -hex 24 >"$file")
  fi
  chmod 0600 "$file"
  cat "$file"
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
  pg_tls_up
}

# TLS with the throwaway certificate, and the role $PG_TLS_ROLE whose password
# (scram-sha-256) is accepted over hostssl only. The trust login of alarmd stays.
# Applied with ALTER SYSTEM and a reload, so a cluster from before gets it too.
pg_tls_up() {
  tls_up
  mkdir -p "$PG_TLS_DIR"
  cp "$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$PG_TLS_DIR/"
  chmod 0600 "$PG_TLS_DIR/server.key"
  local hba="$PG_DATA/pg_hba.conf"
  if ! grep -q "^# alarmd secured role" "$hba"; then
    # First match wins, so these lines go above initdb's trust lines.
    { printf '%s\n' "# alarmd secured role: a password, and only over TLS (scripts/services.sh)" \
        "local   all  $PG_TLS_ROLE                 reject" \
        "hostssl all  $PG_TLS_ROLE  127.0.0.1/32  scram-sha-256" \
        "hostssl all  $PG_TLS_ROLE  ::1/128       scram-sha-256" \
        "host    all  $PG_TLS_ROLE  all           reject"
      cat "$hba"; } >"$hba.new"
    mv "$hba.new" "$hba"
  fi
  local password; password=$(secret "$PG_PASSWORD_FILE")
  # On stdin, not the command line, so no process listing shows the password.
  run_as_pg "$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U alarmd -d postgres >/dev/null <<SQL
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$PG_TLS_DIR/server.crt';
ALTER SYSTEM SET ssl_key_file = '$PG_TLS_DIR/server.key';
ALTER SYSTEM SET password_encryption = 'scram-sha-256';
SELECT pg_reload_conf();
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_TLS_ROLE') THEN
    CREATE ROLE $PG_TLS_ROLE LOGIN;
  END IF;
END \$\$;
SET password_encryption = 'scram-sha-256';
ALTER ROLE $PG_TLS_ROLE WITH LOGIN PASSWORD '$password';
SQL
  # The reload is asynchronous, and a key it cannot load leaves TLS off.
  for _ in $(seq 1 20); do
    run_as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U alarmd -d "dbname=postgres sslmode=require" -tAc "select 1" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "PostgreSQL did not turn TLS on; see $LOCAL/postgres/server.log"
}

pg_running() {
  [ -f "$PG_DATA/PG_VERSION" ] && run_as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

pg_down() {
  if pg_running; then
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
    # HOME too: libpq looks for client certificates in ~/.postgresql, and
    # nobody may not read root's.
    HOME="$LOCAL/postgres" setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
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

kafka_running() {
  [ -f "$KAFKA_DIR/kafka.pid" ] && kill -0 "$(cat "$KAFKA_DIR/kafka.pid")" 2>/dev/null
}

kafka_up() {
  command -v java >/dev/null || die "java not found; Kafka needs Java 17 or newer"
  kafka_fetch
  mkdir -p "$KAFKA_DIR"
  tls_up
  if kafka_running; then
    if port_open "$KAFKA_SASL_SSL_PORT"; then
      log "Kafka already running on port $KAFKA_PORT"
      kafka_scram_up
      return
    fi
    log "Kafka is running without its SASL_SSL listener on $KAFKA_SASL_SSL_PORT; restarting it"
    kafka_down
  fi
  cat >"$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=$KAFKA_SCRAM_MECHANISM
listener.name.sasl_ssl.$(echo "$KAFKA_SCRAM_MECHANISM" | tr 'A-Z' 'a-z').sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/kafka-keystore.pem
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
  local password; password=$(secret "$KAFKA_PASSWORD_FILE")
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    log "formatting KRaft storage in $KAFKA_DIR/data, with the SCRAM user $KAFKA_SCRAM_USER"
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid)
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" \
      --add-scram "$KAFKA_SCRAM_MECHANISM=[name=$KAFKA_SCRAM_USER,password=$password]" >"$KAFKA_DIR/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/format.log" >&2; die "formatting Kafka storage failed"; }
    scram_fingerprint >"$KAFKA_DIR/data/scram-user.sha256"
  fi
  refuse_taken_port "$KAFKA_PORT" Kafka ALARMD_LOCAL_KAFKA_PORT
  refuse_taken_port "$KAFKA_CONTROLLER_PORT" "Kafka controller" ALARMD_LOCAL_KAFKA_PORT
  refuse_taken_port "$KAFKA_SASL_SSL_PORT" "Kafka SASL_SSL listener" ALARMD_LOCAL_KAFKA_SASL_SSL_PORT
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/stdout.log" 2>&1 &
  echo $! >"$KAFKA_DIR/kafka.pid"
  wait_for_port "$KAFKA_PORT" Kafka "$KAFKA_DIR/server.log" "$(cat "$KAFKA_DIR/kafka.pid")"
  wait_for_port "$KAFKA_SASL_SSL_PORT" "Kafka's SASL_SSL listener" "$KAFKA_DIR/server.log" "$(cat "$KAFKA_DIR/kafka.pid")"
  kafka_scram_up
}

# Which SCRAM user and password the storage holds: a hash, never the password.
scram_fingerprint() {
  printf '%s %s %s' "$KAFKA_SCRAM_MECHANISM" "$KAFKA_SCRAM_USER" "$(cat "$KAFKA_PASSWORD_FILE")" | sha256sum | cut -d' ' -f1
}

# Storage formatted before the SASL_SSL listener existed, or a password file
# made anew, gets the SCRAM user through the running broker.
kafka_scram_up() {
  local marker="$KAFKA_DIR/data/scram-user.sha256"
  [ "$(cat "$marker" 2>/dev/null)" = "$(scram_fingerprint)" ] && return 0
  log "setting the SCRAM user $KAFKA_SCRAM_USER on the running broker"
  kafka_java kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
    --entity-type users --entity-name "$KAFKA_SCRAM_USER" \
    --add-config "$KAFKA_SCRAM_MECHANISM=[password=$(cat "$KAFKA_PASSWORD_FILE")]" >"$KAFKA_DIR/scram.log" 2>&1 \
    || { cat "$KAFKA_DIR/scram.log" >&2; die "could not create the Kafka SCRAM user $KAFKA_SCRAM_USER"; }
  scram_fingerprint >"$marker"
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
  write_secured_env
}

# What a client of the secured listeners needs: where they are, the CA to trust,
# the user names, and the files holding the passwords (never the passwords).
# Written for the local services that run, also when the environment already
# points alarmd at them (as `make test` does).
write_secured_env() {
  {
    echo "# Written by scripts/services.sh: the secured connections of the local services."
    if kafka_running; then
      echo "SECURED_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_SASL_SSL_PORT"
      echo "SECURED_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
      echo "SECURED_KAFKA_SASL_MECHANISM=$KAFKA_SCRAM_MECHANISM"
      echo "SECURED_KAFKA_SASL_USERNAME=$KAFKA_SCRAM_USER"
      echo "SECURED_KAFKA_SASL_PASSWORD_FILE=$KAFKA_PASSWORD_FILE"
    fi
    if pg_running; then
      # Quoted: the shell that sources this file would take & for itself.
      echo "SECURED_DATABASE_URL='postgresql+psycopg2://$PG_TLS_ROLE@127.0.0.1:$PG_PORT/alarmd?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.crt'"
      echo "SECURED_DATABASE_USERNAME=$PG_TLS_ROLE"
      echo "SECURED_DATABASE_PASSWORD_FILE=$PG_PASSWORD_FILE"
    fi
    echo "SECURED_CA_FILE=$TLS_DIR/ca.crt"
  } >"$LOCAL/secured.env"
  log "secured connection settings written to .local/secured.env"
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
    rm -rf "$KAFKA_DIR/data" "$LOCAL/postgres" "$TLS_DIR" "$SECRETS_DIR" "$LOCAL/secured.env"
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
    port_open "$KAFKA_SASL_SSL_PORT" && log "Kafka SASL_SSL up on $KAFKA_SASL_SSL_PORT" || log "Kafka SASL_SSL down"
    ;;
  *)
    die "usage: scripts/services.sh up|down|reset|status|postgres-stop|postgres-start|postgres-freeze|postgres-thaw|kafka-stop|kafka-start"
    ;;
esac
