// Package httpapi is gpubroker's HTTP API: /healthz, /metrics, /v1 (bearer
// tokens per team, roles, JSON errors as api.ErrorBody, answers as
// internal/api types built in wire.go) and the dashboard's registration.
//
// It asks the control side only through Control, the interface declared
// here (the fleet in force, the last round's view, why jobs wait, a kick,
// cancel, logs), and reads and writes everything else through the store
// contract. It must never import internal/server/control (internal/arch
// checks it), and reads the time only from its clock.Clock.
package httpapi
