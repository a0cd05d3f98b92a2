// Package server is gpubroker's control plane: the HTTP API under /v1 (with
// bearer-token auth, roles and JSON errors), /metrics, and the reconciler
// that drives backends from the store.
//
// The reconciler is level-triggered, like a Kubernetes controller: each
// round reads the fleet and every non-terminal job from the store, observes
// every backend once, acts on the difference and persists each change as a
// compare-and-set store.MoveJob. It keeps no state that matters across a
// restart: what it holds in memory (why pending jobs wait, how many rounds
// an attempt has been missing) is rebuilt by the next rounds, and what a
// backend must not do twice (start an attempt) is guarded by the backend's
// idempotent, name-keyed Submit.
//
// The server owns the goroutines, the clock and the retries; it calls the
// pure engine (engine.Schedule, engine.Plan) with a snapshot it builds, and
// talks to storage and backends only through their contracts. It must
// never name a concrete store or backend driver: cmd/gpubroker wires them.
package server
