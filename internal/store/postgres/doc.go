// Package postgres is the store.Store for several broker replicas sharing
// one PostgreSQL database, through github.com/jackc/pgx/v5 (a pgxpool,
// seen through pgx's database/sql adapter by store/sqlstore, which holds
// the method bodies both drivers share). It also implements store.Leader
// with a lease row, so that exactly one replica runs the reconciler. What
// is PostgreSQL's own stays here: $n placeholders, the job ID counter,
// transaction IDs as cursors, the advisory lock around migrations.
//
// Schema: versioned migrations (the migrations slice and, for backfills,
// steps, recorded in schema_migrations by sqlstore.Migrate), applied at
// Open in one transaction under an advisory lock, so replicas starting
// together migrate once. Tables live in the
// connection's search_path, which lets tests give each test a schema of its
// own. Workload and Placement are JSONB. Times are BIGINT Unix nanoseconds,
// UTC, as in store/sqlite, so both drivers keep instants exactly (read them
// in psql with to_timestamp(created / 1e9)).
//
// Job IDs come from a one-row counter updated inside the creating
// transaction, not from a sequence: IDs are dense and in commit order, as
// the contract says, at the price of serializing job creation.
//
// This package must never import engine, server or another driver; of
// the project, it imports only store and store/sqlstore.
package postgres
