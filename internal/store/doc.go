// Package store is the control plane's persistence contract: jobs and their
// state machine, the per-job event history, the fleet document, API tokens
// and usage records. Drivers live in store/sqlite (the embedded default)
// and store/postgres (several broker replicas); store/storetest is the one
// conformance suite both pass.
//
// The contract is written from what internal/server needs and speaks only
// model types and the types below: no SQL, no driver types. Every method
// that changes state is one transaction; a method either does all it says
// or nothing (MoveJobs: each of its moves that can apply does, or, when the
// store fails, none).
package store
