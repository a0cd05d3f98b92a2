// Package store is the control plane's persistence contract: jobs and their
// state machine, the per-job event history and attempts, the fleet
// document, API tokens and usage records. Drivers live in store/sqlite (the
// embedded default) and store/postgres (several broker replicas), both
// over store/sqlstore, the SQL they share; store/storetest is the one
// conformance suite both pass.
//
// Attempts are structure, not text: each move writes the attempt it
// changes (Attempt) in its own transaction, and event messages are for
// people only.
//
// The contract is written from what internal/server needs and speaks only
// model types and the types below: no SQL, no driver types. Every method
// that changes state is one transaction; a method either does all it says
// or nothing (MoveJobs: each of its moves that can apply does, or, when the
// store fails, none).
//
// Cursor and Changes let a reader follow the jobs without listing them all
// again: each driver marks every job row with the write that last changed
// it (SQLite: a number one past the highest, writers being serialized;
// PostgreSQL: the writing transaction's ID, read back from the oldest
// transaction still running when the cursor was taken, since transactions
// commit out of ID order).
package store
