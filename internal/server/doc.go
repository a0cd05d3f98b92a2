// Package server is gpubroker's control plane, wired: the HTTP API
// (internal/server/httpapi: /v1 with bearer-token auth, roles and JSON
// errors, /metrics, the dashboard) over the controllers
// (internal/server/control: the reconciler that drives backends from the
// store), on one injected clock (internal/server/clock) and one metrics
// registry. New wires them; Open starts the listener and the reconciler,
// Close stops both and waits (docs/adr/0007-server-split.md).
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
// It must never name a concrete store or backend driver: cmd/gpubroker
// wires them.
package server
