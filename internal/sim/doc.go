// Package sim is gpubroker's discrete-event simulator: it replays a
// workload trace through a fleet under a named policy, with the same
// scheduling core the server uses (internal/engine), and accounts every
// GPU-hour and dollar in a ledger (internal/ledger).
//
// The simulator is the clock. Events sit in a heap ordered by (time,
// sequence number); trace arrivals come first among events at the same
// instant. Randomness (spot preemptions) comes only from math/rand/v2
// seeded by Config.Seed, which is required: the same workloads, fleet,
// policy and seed give the same Result, byte for byte.
//
// # Events
//
//   - arrival: a trace job joins the pending list.
//   - round: the engine schedules the pending list. A round runs only when
//     something changed since the last one, and at most once every
//     Config.RoundInterval of simulated time. Decisions are applied in the
//     order the engine documents: preemptions, scale requests, admissions.
//     Admissions name exact nodes; the simulator keeps per-node free GPU
//     counts of every pool and fails the run (ErrInvariant) if any would go
//     negative.
//   - completion: an attempt finishes its remaining work.
//   - spot preemption: each attempt on a spot pool draws its time to
//     preemption from an exponential law with rate
//     ProviderInfo.SpotPreemptionPerHour x nodes.
//   - outage start/end (Config.Outages): the provider's or cluster's pools go
//     down; work running there is lost since its last checkpoint and
//     requeued.
//   - scale-up: an admission on nodes an elastic pool adds starts after
//     Config.ScaleDelay (the nodes are held from the admission).
//
// A preempted or lost attempt goes back to pending with its remaining work
// = work left - work saved at its last checkpoint (every
// Workload.CheckpointInterval of run time; none means all the attempt's
// work is lost).
//
// A job whose wait reason is static (no pool with its GPU model, a gang
// larger than any pool, ...) is parked until the fleet changes (an outage
// ends); jobs still waiting when no event is left are reported as never
// runnable with the engine's last reason.
//
// sim imports engine, ledger, model and report; never store, backend or
// server. It reads no wall clock except to report how long a run took.
package sim
