// Package cli implements gpubroker's commands: flags, reading input files,
// and printing results as aligned tables or JSON. main calls Run; tests call
// it in-process with buffers.
//
// Each command lives in its own file as a constructor newXxxCmd(env) that
// is listed once in commands (cli.go). Commands hold no global state: the
// standard streams, the clock and file access come from an Env, so a test
// pins the time and captures the output. cli may read files and the clock;
// it must not hold scheduling logic (that is the engine's) nor name
// concrete store or backend drivers (that is cmd/gpubroker's).
//
// The API commands (status, launch, logs, cancel, events, fleet, usage,
// token) are clients of /v1 through api.Client and print api types; they
// never import server, store or backend. Only server.go, drivers.go and
// tokenstore.go, which start a server or open its store, may (internal/arch
// checks it per file; docs/adr/0005-wire-types.md).
package cli
