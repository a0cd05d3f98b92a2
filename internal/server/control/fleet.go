package control

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/server/view"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

func (s *Controller) localFleetState() *view.Fleet {
	return view.NewFleet(view.LocalFleet(s.cfg.LocalGPU, s.cfg.LocalGPUs), 0, "built-in local fleet")
}

// refreshFleet is the fleet a round runs: readFleet's, with each elastic
// pool that the provisioning controller scaled at its ready size
// (provision.go).
func (s *Controller) refreshFleet(ctx context.Context) (*view.Fleet, error) {
	fs, err := s.readFleet(ctx)
	return s.provisionedFleet(fs), err
}

// readFleet reads the store's newest fleet and parses it only when its
// version changed. A stored fleet this server cannot parse or validate
// is handled by invalidFleet.
func (s *Controller) readFleet(ctx context.Context) (*view.Fleet, error) {
	cur := s.fleet.Load()
	doc, version, err := s.store.GetFleet(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if cur.Version != 0 {
			cur = s.localFleetState()
			s.fleet.Store(cur)
		}
		return cur, nil
	case err != nil:
		return cur, err
	case version == cur.Version:
		return cur, nil
	case version < cur.Version:
		// PUT /v1/fleet stored a newer one since this read began.
		return cur, nil
	}
	if fe := s.fleetErr.Load(); fe != nil && fe.version == version {
		return cur, nil // known not to validate: not parsed every round
	}
	f, _, err := spec.ParseFleetWith([]byte(doc), fmt.Sprintf("fleet v%d", version), spec.FleetOptions{Backends: s.cfg.FleetBackends})
	if err != nil {
		return s.invalidFleet(cur, version, err), nil
	}
	next := view.NewFleet(f, version, fmt.Sprintf("fleet v%d", version))
	s.setFleet(next)
	return next, nil
}

// setFleet installs fs unless a newer version is installed already.
func (s *Controller) setFleet(fs *view.Fleet) {
	for {
		cur := s.fleet.Load()
		if cur.Version > fs.Version {
			return
		}
		if s.fleet.CompareAndSwap(cur, fs) {
			return
		}
	}
}

// clusterBackend is the backend of one cluster, or why there is none.
type clusterBackend struct {
	def model.Cluster
	b   backend.Backend
	err error
}

// sameBackendDef reports whether two definitions of a cluster need the
// same backend (pools may change without a new backend).
func sameBackendDef(a, b model.Cluster) bool {
	return a.Name == b.Name && a.Backend == b.Backend && a.Endpoint == b.Endpoint &&
		a.Provider == b.Provider && a.Region == b.Region && a.Zone == b.Zone &&
		reflect.DeepEqual(a.Slurm, b.Slurm) && reflect.DeepEqual(a.Kubernetes, b.Kubernetes) &&
		reflect.DeepEqual(a.Target, b.Target)
}

// backendOf returns the cached backend of c, making it on first use, when
// c's definition changed, or again while making it fails.
func (s *Controller) backendOf(c model.Cluster) (backend.Backend, error) {
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	if cb, ok := s.backends[c.Name]; ok && cb.err == nil && sameBackendDef(cb.def, c) {
		return cb.b, nil
	}
	b, err := s.cfg.Backends(c)
	if err == nil && b == nil {
		err = fmt.Errorf("no backend for cluster %q (backend %s)", c.Name, c.Backend)
	}
	s.backends[c.Name] = &clusterBackend{def: c, b: b, err: err}
	return b, err
}

// backendFor finds the backend of a cluster by name: the current fleet's
// definition, else the one cached from an earlier fleet (work may still
// run on a cluster that a new fleet dropped).
func (s *Controller) backendFor(ctx context.Context, cluster string) (backend.Backend, error) {
	if c := s.fleet.Load().Fleet.Cluster(cluster); c != nil {
		return s.backendOf(*c)
	}
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	if cb, ok := s.backends[cluster]; ok && cb.err == nil {
		return cb.b, nil
	}
	return nil, fmt.Errorf("cluster %q is not in the fleet: %w", cluster, backend.ErrUnavailable)
}

// knownBackends lists every backend made so far, by cluster name.
func (s *Controller) knownBackends() []backend.Backend {
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	names := make([]string, 0, len(s.backends))
	for n, cb := range s.backends {
		if cb.err == nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := make([]backend.Backend, len(names))
	for i, n := range names {
		out[i] = s.backends[n].b
	}
	return out
}

// maxFleetErrorBytes bounds the validation errors an invalid stored fleet
// is reported with (logs, reasons, GET /v1/fleet): a fleet of 100,000 bad
// pools has as many errors.
const maxFleetErrorBytes = 2 << 10

// invalidFleet is the fleet state when the store's newest fleet, version,
// does not parse or validate (err): one an older version accepted (a pool
// of 10^9 nodes once took a server to 23 GB, and every restart again), or
// a newer version wrote. With a valid stored fleet already in force (cur,
// parsed by this process) that one stays; otherwise (a server starting)
// the fleet in force has no cluster and says why (view.InvalidFleet): the
// reconciler then schedules, observes and loses nothing until a valid
// fleet is applied. Either way the error is logged once per version and
// shown by GET /v1/fleet (and so fleet show) and the pending jobs' reason.
func (s *Controller) invalidFleet(cur *view.Fleet, version int64, err error) *view.Fleet {
	msg := err.Error()
	if len(msg) > maxFleetErrorBytes {
		msg = msg[:maxFleetErrorBytes] + "... (more errors: gpubroker fleet apply lists every one)"
	}
	err = fmt.Errorf("the stored fleet v%d does not validate: %s", version, msg)
	if cur.Version > 0 && cur.Invalid == nil {
		if old := s.fleetErr.Swap(&fleetError{version: version, err: err}); old == nil || old.version != version {
			s.log.Error("the stored fleet does not validate; keeping the fleet in force", "version", version, "in_force", cur.Version, "err", msg)
		}
		return cur
	}
	s.log.Error("the stored fleet does not validate; nothing is scheduled until a valid fleet is applied (gpubroker fleet apply)", "version", version, "err", msg)
	next := view.InvalidFleet(version, err)
	s.setFleet(next)
	return next
}

// fleetError is a stored fleet version that does not validate while an
// earlier valid one stays in force.
type fleetError struct {
	version int64
	err     error
}

// FleetError is why the store's newest fleet is not in force (it does not
// validate with this server), or nil when it is.
func (s *Controller) FleetError() error {
	fs := s.fleet.Load()
	if fs.Invalid != nil {
		return fs.Invalid
	}
	if fe := s.fleetErr.Load(); fe != nil && fe.version > fs.Version {
		return fe.err
	}
	return nil
}

// holdAll is a round under an invalid fleet (view.Fleet.Invalid): it
// moves nothing and only says why every pending job waits.
func (s *Controller) holdAll(jobs []*store.Job, why error) {
	waits := make(map[int64]string, len(jobs))
	for _, j := range jobs {
		if j.State == store.Pending {
			waits[j.ID] = "FleetInvalid: " + why.Error() + "; apply a valid fleet (gpubroker fleet apply)"
		}
	}
	s.waitMu.Lock()
	s.waits = waits
	s.waitMu.Unlock()
}
