// Package sqlstore is the part of a store.Store that SQL databases share:
// the method bodies of both store drivers written once, over database/sql,
// with a small Dialect for what differs between SQLite and PostgreSQL
// (placeholders, how a write marks the rows it changes, locks, the schema
// bookkeeping table, text order).
//
// A driver (store/sqlite, store/postgres) opens its database, declares its
// schema migrations and its Dialect, and embeds a *DB; it keeps only what
// really differs: how job IDs are handed out (CreateJob), how a reader
// follows writes (Cursor, Changes), connection setup and Close.
//
// Queries here are written with ? placeholders, each argument given once
// per ?, in SQL that both engines accept; the Dialect rewrites them.
//
// This package imports only store, model and the standard library: it
// must never name a database driver, engine, server or another package
// of the project.
package sqlstore
