// Package catalog knows what GPU capacity the clouds sell and at what list
// price: the canonical GPU models and the many spellings users, SkyPilot,
// Kubernetes node labels and provider price lists give them; instance types
// with their GPUs, CPUs, memory and per-region on-demand and spot prices; a
// built-in catalog embedded in the binary; loaders for SkyPilot catalog CSVs
// and the AWS and GCP price dumps; and a view of a catalog as a model.Fleet
// so that `gpubroker plan` works without a fleet file.
//
// catalog imports only model and the standard library. It must never do
// network I/O, read the clock, keep global mutable state or register
// anything in init(): loaders take an io.Reader from the caller, and
// Builtin parses the embedded data afresh on every call. Its outputs are
// deterministic: offers are sorted on stable keys, never in map order. It
// never panics on bad input; every rejection is an error value of an
// exported type that callers can inspect with errors.As.
package catalog
