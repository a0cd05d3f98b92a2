// Package server is gpubroker's control plane, wired: the HTTP API
// (internal/server/httpapi: /v1 with bearer-token auth, roles and JSON
// errors, /metrics, the dashboard) over the controllers
// (internal/server/control: the reconciler that drives backends from the
// store), on one injected clock (internal/server/clock) and one metrics
// registry. New wires them; Open starts the listener and the reconciler,
// Close stops both and waits (docs/adr/0007-server-split.md).
//
// It must never name a concrete store or backend driver: cmd/gpubroker
// wires them.
package server
