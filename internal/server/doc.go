// Package server is gpubroker's control plane: the HTTP API under /v1 (with
// bearer-token auth, roles and JSON errors), /metrics, and the reconciler
// that drives backends from the store.
//
// The reconciler is level-triggered, like a Kubernetes controller: each
// round reads the fleet and every non-terminal job from the store (the
// jobs written since the last round, store.Changes, over the ones it
// read before; all of them at start, after a failed read and every five
// minutes), observes every backend once, acts on the difference and
// persists each change as a compare-and-set move, a step's moves written
// together in one transaction (store.MoveJobs; an attempt's usage goes
// with the move that ends it). It keeps no state that matters across a
// restart: what it holds in memory (why pending jobs wait, how many rounds
// an attempt has been missing) is rebuilt by the next rounds, and what a
// backend must not do twice (start an attempt) is guarded by the backend's
// idempotent, name-keyed Submit.
//
// # Clusters that stop answering
//
// A cluster whose health check or observation fails takes no new work from
// that round on (its pools are down in the engine's snapshot). Once it has
// failed for Config.ClusterTimeout in a row, every attempt dispatched or
// running there is lost: the job goes back to PENDING as a new attempt
// ("Lost: cluster C unreachable for 30s"), its usage is recorded, and the
// engine places it elsewhere; under job_recovery EAGER_NEXT_REGION the new
// attempt avoids the old one's region (Workload.AvoidRegions). The broker
// cannot stop what still runs on a cluster it cannot reach: when the
// cluster answers again, the orphan clean-up cancels every attempt there
// that is no longer some job's current one, and in between the job's own
// checkpoint fencing (docs/tasks.md) keeps the old attempt from committing
// work. When a cluster first failed and which attempts must avoid which
// region live in memory only: a restarted server starts the timeout again
// and lets those attempts go anywhere.
//
// # Elastic pools
//
// The provisioning controller (provision.go) acts on the engine's scale
// requests for the elastic pools of clusters whose backend is a
// backend.Scaler: it asks the backend for the nodes the round needs, holds
// back work on nodes not ready yet, and lets idle nodes go after a while.
//
// GET /v1/jobs/{id}/attempts lists a job's attempts as the store keeps
// them (store.Attempts, written in the same transaction as each move):
// where each ran, when, and why it ended (the message of the move that
// ended it). Event messages are for people and are never parsed.
//
// The server owns the goroutines, the clock and the retries; it calls the
// pure engine (engine.Schedule, engine.Plan) with a snapshot it builds, and
// talks to storage and backends only through their contracts. It must
// never name a concrete store or backend driver: cmd/gpubroker wires them.
package server
