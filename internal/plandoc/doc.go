// Package plandoc turns engine.Plan's candidates for a workload into the
// api.WorkloadPlan that `gpubroker plan -o json` and POST /v1/plan print:
// the one place the engine's plan meets the wire, so the CLI and the
// server print the same document.
//
// plandoc imports only engine, model and api. It must never compute
// anything the engine did not (ranks, costs and reasons are copied, not
// recomputed), nor do I/O.
package plandoc
