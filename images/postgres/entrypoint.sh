#!/bin/sh
# PostgreSQL 17 + pgvector entrypoint: initialise $PGDATA on first start, then
# exec postgres (PID 1, so SIGINT from `podman stop` is a fast shutdown).
#
#   POSTGRES_PASSWORD_FILE  file holding the password (preferred: a secret)
#   POSTGRES_PASSWORD       the password itself (when no file is given)
#   POSTGRES_USER           superuser to create (default: codebase)
#   POSTGRES_DB             database to create with the vector extension (default: codebase)
#   Extra arguments are passed to postgres (e.g. -c shared_buffers=256MB).
#
# First start is resumable: a start killed midway (a stop, a probe on a slow
# host) is completed by the next one. A cluster whose initdb or configuration
# was cut short holds no data yet and is made again; a configured cluster is
# only ever completed (idempotent CREATE DATABASE / CREATE EXTENSION), never
# cleared. The marker file is written last.
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-codebase}"
db="${POSTGRES_DB:-codebase}"
marker="$PGDATA/.codebase-mcp-initialised"
configured_line="unix_socket_directories = '/tmp'"

fail() { echo "pg-entrypoint: error: $*" >&2; exit 1; }

if [ -s "$PGDATA/PG_VERSION" ] && [ ! -e "$marker" ] \
    && ! grep -qxF "$configured_line" "$PGDATA/postgresql.conf" 2>/dev/null; then
    echo "pg-entrypoint: $PGDATA holds an interrupted initdb (no data yet): starting it again"
    find "$PGDATA" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        [ -r "$POSTGRES_PASSWORD_FILE" ] || fail "POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE is not readable"
        pwfile="$POSTGRES_PASSWORD_FILE"
    elif [ -n "${POSTGRES_PASSWORD:-}" ]; then
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    else
        fail "no password: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)"
    fi
    [ -w "$PGDATA" ] || fail "$PGDATA is not writable by uid $(id -u): mount a volume owned by 999:999"
    echo "pg-entrypoint: initialising $PGDATA for user $user, database $db"
    initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    [ "$pwfile" = "${POSTGRES_PASSWORD_FILE:-}" ] || rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    {
        echo "listen_addresses = '*'"
        echo "jit = off"
        echo "$configured_line"
    } >> "$PGDATA/postgresql.conf"
fi

if [ ! -e "$marker" ]; then
    pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses='' -c unix_socket_directories=/tmp" \
        --wait --silent start
    psql --host=/tmp --username="$user" --dbname=postgres --quiet --set=ON_ERROR_STOP=1 \
        --set=db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
\c :db
CREATE EXTENSION IF NOT EXISTS vector;
\c template1
CREATE EXTENSION IF NOT EXISTS vector;
SQL
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
    : > "$marker"
    echo "pg-entrypoint: initialised"
fi

exec postgres -D "$PGDATA" "$@"
