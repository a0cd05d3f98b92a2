// Package control is the control side of gpubroker's server: the
// reconciler that drives backends from the store, and what the HTTP API
// asks of it (httpapi.Control: the fleet in force, the last round's view,
// why jobs wait, cancel, logs).
//
// A round runs a fixed list of controllers (controllers, in reconcile.go;
// docs/adr/0007-server-split.md): observe, orphans, pipelines, placement,
// dispatch. The reconciler is level-triggered, like a Kubernetes controller: each
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
// The provisioning controller (provision.go), run within placement, acts
// on the engine's scale requests for the elastic pools of clusters whose
// backend is a backend.Scaler: it asks the backend for the nodes the round
// needs, holds back work on nodes not ready yet, and lets idle nodes go
// after Config.ScaleDownAfter.
//
// # Attempts
//
// Each move writes the job's attempt (store.Attempts, in the same
// transaction): where it ran, its GPU slots, when, and why it ended. Event
// messages are for people and are never parsed.
//
// The controller owns the reconciler's goroutine, the watchers that wake
// it (one per watched backend) and the retries; it reads the time only
// from its clock.Clock. It calls the pure engine (engine.Schedule) with a
// snapshot it builds, and talks to storage and backends only through their
// contracts. It must never import the HTTP API (internal/server/httpapi)
// or the dashboard, nor name a concrete store or backend driver.
package control
