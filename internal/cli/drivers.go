package cli

import (
	"context"
	"errors"
	"io"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// Drivers are the concrete store and backend drivers. cli never names a
// driver package (the layering test checks it): cmd/gpubroker sets these
// and passes them to Main.
type Drivers struct {
	// OpenStore opens the store a --store URL names: "sqlite:PATH" (or a
	// bare path) for the embedded store, "postgres://..." for PostgreSQL.
	OpenStore func(ctx context.Context, url string) (store.Store, error)
	// Backends are the backend drivers of this build, in the order
	// messages list them: a fleet's clusters may name these backends and
	// no others, and the server opens each cluster with its backend's
	// driver (state under STATE_DIR/BACKEND/CLUSTER). The local one is
	// required: it runs the built-in local fleet.
	Backends []backend.Driver
}

// Main is Run with the drivers that the server and `token create --store`
// use. Commands that need none (plan, the API clients) work without them.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, d Drivers) int {
	env := newEnv(stdin, stdout, stderr)
	env.Drivers = d
	return env.Run(ctx, args)
}

var errNoDrivers = errors.New("this build of gpubroker has no store or backend drivers (run cmd/gpubroker)")

// drivers returns the env's drivers, or an error when it has none.
func (env *Env) drivers() (Drivers, error) {
	d := env.Drivers
	if d.OpenStore == nil || d.backend(model.BackendLocal) == nil {
		return Drivers{}, errNoDrivers
	}
	return d, nil
}

// backend returns the driver of backend kind, or nil when this build has
// none.
func (d Drivers) backend(kind model.BackendKind) *backend.Driver {
	for i := range d.Backends {
		if d.Backends[i].Name == string(kind) && d.Backends[i].Open != nil {
			return &d.Backends[i]
		}
	}
	return nil
}
