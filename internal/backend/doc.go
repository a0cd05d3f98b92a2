// Package backend is the contract between the control plane and the engines
// that run work: a local machine, Slurm, Kubernetes. The required interface
// is small (submit, observe, cancel, logs); optional capabilities (health,
// discovery) are separate interfaces a driver may also implement, checked
// with a type assertion, as database/sql/driver does.
//
// Drivers live in backend/local, backend/slurm, backend/kubernetes; each
// passes backend/backendtest. A driver imports this package, model and its
// engine's SDK, never the server, the engine or another driver.
package backend
