// Package engine is gpubroker's scheduling core:
//
//	Schedule(snapshot, pending, policy, now) -> decisions
//
// It decides which pending workloads are admitted where, which running work
// is preempted to make room, which elastic pools should grow, and for every
// workload left waiting, why.
//
// The engine is pure and deterministic. It never reads a clock (now is passed
// in), never draws random numbers, does no I/O, starts no goroutines, and
// never lets map iteration order reach its output: the same inputs give the
// same decisions byte for byte. That is what lets the simulator (internal/sim)
// and the server (internal/server) run the very same core.
//
// Schedule is one round from a snapshot. A Scheduler runs the same rounds
// but keeps their state between them, for a caller that reports every change
// (the simulator); a test checks that both decide alike.
//
// A round works like this:
//
//  1. Build round state from the snapshot: per-pool free nodes, usage by team,
//     provider and contract.
//  2. Order pending work: priority first, then weighted fair share between
//     teams (or FIFO when the policy turns fair share off), then arrival.
//  3. For each workload and each of its resource options, take the candidate
//     pools that pass every static check (one small checker per constraint,
//     each rejection named), ranked by effective cost per GPU-hour. These
//     lists are built once per class of alike workloads, split by provider,
//     spot-ness and data region (inside such a sub-index every workload of
//     the class ranks the pools alike), each with a segment tree over free
//     capacity, so finding the cheapest pool with room for a gang costs
//     O(sub-indexes x log pools).
//  4. Apply the dynamic checks (quota and cohort borrowing, team budget,
//     provider share cap, judged on what the window has used plus what
//     running work and this admission are expected to use) and place the
//     gang on nodes of one pool, best fit, or preempt the running work that
//     loses the least.
//  5. Record the admission and update the indexes, so later workloads of the
//     round see the capacity as taken.
//
// Effective cost (see cost.go): list price, less contract discount, less the
// price of committed or reserved capacity (already paid for), less a
// shadow discount where a take-or-pay spend commitment is behind its burn
// plan, plus the expected cost of work lost to spot preemption, plus data
// egress spread over the job's GPU-hours.
package engine
