"""The postgres_exporter series the PostgreSQL dashboard and alerts use.

Each is looked up in the recorded fixture (:mod:`external`), so a name the
exporter does not expose fails at import with the refresh command, before any
query is written. Only the build imports this module.
"""

from __future__ import annotations

from genonaut_monitoring.exporters.catalogue import MetricSpec
from genonaut_monitoring.exporters.external import POSTGRES_EXPORTER, spec


def _pg(name: str) -> MetricSpec:
    return spec(POSTGRES_EXPORTER, name)


PG_UP = _pg("pg_up")
PG_CONNECTIONS = _pg("pg_stat_activity_count")
PG_MAX_CONNECTIONS = _pg("pg_settings_max_connections")
PG_LOCKS = _pg("pg_locks_count")
PG_DEADLOCKS = _pg("pg_stat_database_deadlocks")
PG_COMMITS = _pg("pg_stat_database_xact_commit")
PG_ROLLBACKS = _pg("pg_stat_database_xact_rollback")
PG_BLOCKS_HIT = _pg("pg_stat_database_blks_hit")
PG_BLOCKS_READ = _pg("pg_stat_database_blks_read")
PG_DATABASE_SIZE = _pg("pg_database_size_bytes")
# From the custom queries in genonaut_monitoring/pgexporter.py.
PG_OLDEST_TRANSACTION = _pg("pg_oldest_transaction_seconds")
PG_IDLE_IN_TRANSACTION = _pg("pg_idle_in_transaction_sessions")
PG_IDLE_IN_TRANSACTION_MAX = _pg("pg_idle_in_transaction_max_seconds")
PG_LOCK_WAITS = _pg("pg_lock_waits_sessions")
PG_LOCK_WAITS_MAX = _pg("pg_lock_waits_max_seconds")
PG_STATEMENT_SECONDS = _pg("pg_stat_statements_seconds_total")
PG_STATEMENT_CALLS = _pg("pg_stat_statements_calls_total")
