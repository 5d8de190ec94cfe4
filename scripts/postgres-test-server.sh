#!/usr/bin/env bash
# A PostgreSQL server on loopback for the shared-storage test (tests/test_storage_rdb.py).
# Installs the Debian package if missing, starts the packaged cluster as the postgres user (or
# leaves it running if it already is), and makes a role and database `autoprune`. Prints the
# storage URL on success; exits non-zero (and the test skips with the reason) when it cannot.
set -euo pipefail
cd /  # psql as the postgres user cannot read the caller's folder
if ! command -v pg_lsclusters >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq postgresql) >/dev/null
fi
cluster=$(pg_lsclusters --no-header | head -n1)
[ -n "$cluster" ] || { echo "no PostgreSQL cluster found" >&2; exit 1; }
read -r version name port status _ <<<"$cluster"
if [ "$status" != "online" ]; then
    pg_ctlcluster "$version" "$name" start >&2  # stdout carries only the URL
fi
as_postgres() { su postgres -c "$1"; }
if [ "$(as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'autoprune'\"")" != 1 ]; then
    as_postgres "psql -p $port -qc \"CREATE ROLE autoprune LOGIN PASSWORD 'autoprune'\""
fi
if [ "$(as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_database WHERE datname = 'autoprune'\"")" != 1 ]; then
    as_postgres "createdb -p $port -O autoprune autoprune"
fi
echo "postgresql://autoprune:autoprune@127.0.0.1:$port/autoprune"
