#!/usr/bin/env bash
# KUMKM Postgres initialisation: one schema and one login role per service, in the database
# $KUMKM_DATABASE (default kumkm; created when missing).
#
# The official postgres image runs this once, on an empty data directory, as $POSTGRES_USER through the
# local socket (the embedded test server runs it the same way over TCP, through PGHOST and PGPORT).
# It is idempotent, so it can also be re-run by hand to rotate passwords:
#   docker compose exec postgres /docker-entrypoint-initdb.d/10-kumkm-roles.sh
#
# Each role (loans, catalog, notifications, monitoring):
#   - logs in with the password from LOANS_DB_PASSWORD, CATALOG_DB_PASSWORD, NOTIFICATIONS_DB_PASSWORD or
#     MONITORING_DB_PASSWORD;
#   - owns the schema of the same name, and has search_path set to it;
#   - has CONNECT on this database only, no TEMP, and no CREATE anywhere else (not even on public);
#   - cannot see the other schemas (their USAGE is revoked from PUBLIC).
# The same statements, without the passwords, are in deploy/k8s/postgres/cluster.yaml for CloudNativePG.
set -euo pipefail

: "${LOANS_DB_PASSWORD:?LOANS_DB_PASSWORD must be set}"
: "${CATALOG_DB_PASSWORD:?CATALOG_DB_PASSWORD must be set}"
: "${NOTIFICATIONS_DB_PASSWORD:?NOTIFICATIONS_DB_PASSWORD must be set}"
: "${MONITORING_DB_PASSWORD:?MONITORING_DB_PASSWORD must be set}"

database="${KUMKM_DATABASE:-kumkm}"

psql_in() {
  local dbname="$1"
  shift
  psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}" --dbname "${dbname}" "$@"
}

run_psql() {
  psql_in "${database}" "$@"
}

# The official image has already created $POSTGRES_DB (set it to the same name); other servers have not.
psql_in "${POSTGRES_DB:-postgres}" -v database="${database}" <<'EOSQL'
SELECT format('CREATE DATABASE %I', :'database') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
EOSQL

# Lock the databases down: PUBLIC (every role) may not connect, create temporary tables, or create
# anything in the public schema. Only the roles granted below connect, and only to this database.
run_psql <<'EOSQL'
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', datname) FROM pg_database WHERE datallowconn \gexec
REVOKE ALL ON SCHEMA public FROM PUBLIC;
EOSQL

for role in loans catalog notifications monitoring; do
  password_var="$(echo "${role}" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  run_psql -v role="${role}" -v password="${!password_var}" <<'EOSQL'
SELECT format('CREATE ROLE %I', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD %L', :'role', :'password') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', :'role', :'role') \gexec
SELECT format('ALTER SCHEMA %I OWNER TO %I', :'role', :'role') \gexec
SELECT format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', :'role') \gexec
SELECT format('ALTER ROLE %I SET search_path TO %I', :'role', :'role') \gexec
EOSQL
  echo "kumkm: role and schema '${role}' ready"
done
