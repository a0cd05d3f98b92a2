// Package sqlite is the embedded store.Store: one SQLite file in WAL mode,
// through modernc.org/sqlite (pure Go, no cgo), so the broker stays one
// static binary. It is the default of `gpubroker server`. The method bodies
// it shares with store/postgres live in store/sqlstore; what is SQLite's
// own stays here: the two connection pools, group commit of CreateJob,
// write numbers as cursors.
//
// Writes go through one connection (every write transaction is BEGIN
// IMMEDIATE on it), so concurrent writers in this process queue up instead
// of failing with SQLITE_BUSY, and job IDs are handed out in commit order.
// Reads use a separate pool of read-only connections that WAL lets run
// beside the writer. Other processes opening the same file wait on
// busy_timeout. synchronous=FULL: the WAL is synced at each commit, so a
// committed transaction survives a power cut, not only a crash of the
// process (docs/benchmarks.md has its cost, 1.6-1.8x per commit).
//
// Schema: versioned migrations (the migrations slice and, for backfills,
// steps, recorded in schema_migrations by sqlstore.Migrate) run in one
// transaction at Open. Workload and Placement are JSON columns (Go field
// names as keys; model types carry no JSON tags, so renaming a model field
// needs a migration). Times are int64
// Unix nanoseconds, UTC, so they round-trip exactly.
//
// This package must never import engine, server or another driver.
package sqlite
