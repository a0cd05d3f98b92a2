// Package lifecycle decides what happens to a job after one of its
// attempts ends: retry it here, retry it elsewhere, count a restart, give
// up, or (for a pipeline stage) wait, start or cancel. The server's
// reconciler applies these moves to the store and the backends; the
// simulator applies the same moves to its virtual jobs, so a recovery
// policy (job_recovery's strategy, max_restarts_on_errors, the budget of
// lost attempts) behaves the same in both.
//
// Like the engine it is pure: no clock (the caller passes what it
// observed), no I/O, no goroutines, no randomness; same input, same move.
// It imports only model and the standard library.
package lifecycle
