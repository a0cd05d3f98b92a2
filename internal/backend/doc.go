// Package backend is the contract between the control plane and the engines
// that run work: a local machine, Slurm, Kubernetes. The required interface
// is small (submit, observe, cancel, logs); optional capabilities (health,
// discovery) are separate interfaces a driver may also implement, checked
// with a type assertion, as database/sql/driver does.
//
// Drivers live in backend/local, backend/slurm, backend/kubernetes; each
// passes backend/backendtest. A driver imports this package, model and its
// engine's SDK, never the server, the engine or another driver. Each
// describes itself with a Driver (its fleet name, the check of its block,
// Open), and cmd/gpubroker lists those: no driver registers itself.
//
// Scaler, the capability of growing and shrinking elastic pools, is what
// the server's provisioning controller drives with the engine's scale
// requests.
package backend
