// Package e2e holds end-to-end tests of the gpubroker binary: they build
// cmd/gpubroker, run it as users and operators would (server, launch,
// status), and kill it with SIGKILL to show that the control plane loses
// nothing and runs nothing twice. It has no production code; it must never
// be imported.
package e2e
