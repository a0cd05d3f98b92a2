package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// contextTimeout bounds store and backend calls made outside a request.
const contextTimeout = 30 * time.Second

// fleetState is one parsed fleet, shared read-only.
type fleetState struct {
	fleet *model.Fleet
	// version is the store's fleet version; 0 for the built-in local fleet.
	version int64
	// name says which fleet this is in messages and plan output.
	name string
	// applied is the fleet as applied when fleet is its provisioned view
	// (provisionedFleet); nil when fleet is.
	applied   *model.Fleet
	teams     map[string]bool
	teamNames []string
}

func newFleetState(f *model.Fleet, version int64, name string) *fleetState {
	fs := &fleetState{fleet: f, version: version, name: name, teams: map[string]bool{}}
	for _, t := range f.Teams {
		fs.teams[t.Name] = true
		fs.teamNames = append(fs.teamNames, t.Name)
	}
	sort.Strings(fs.teamNames)
	return fs
}

// Names of the built-in local fleet.
const (
	LocalCluster = "local"
	LocalPool    = "local"
)

// LocalFleet is the fleet a server runs while none was applied: this
// machine as one committed (free) pool of one node.
func LocalFleet(gpu model.GPUModel, gpus int) *model.Fleet {
	return &model.Fleet{
		Clusters: []model.Cluster{{
			Name: LocalCluster, Provider: "onprem", Region: "local", Backend: model.BackendLocal,
			Pools: []model.Pool{{Name: LocalPool, GPU: gpu, GPUsPerNode: gpus, Nodes: 1, PriceClass: model.Committed}},
		}},
		Policy: model.DefaultPolicy(),
	}
}

func (s *Server) localFleetState() *fleetState {
	return newFleetState(LocalFleet(s.cfg.LocalGPU, s.cfg.LocalGPUs), 0, "built-in local fleet")
}

// refreshFleet is the fleet a round runs: readFleet's, with each elastic
// pool that the provisioning controller scaled at its ready size
// (provision.go).
func (s *Server) refreshFleet(ctx context.Context) (*fleetState, error) {
	fs, err := s.readFleet(ctx)
	return s.provisionedFleet(fs), err
}

// readFleet reads the store's newest fleet and parses it only when its
// version changed. A stored fleet this server cannot parse (written by a
// newer version) is logged and the previous one kept.
func (s *Server) readFleet(ctx context.Context) (*fleetState, error) {
	cur := s.fleet.Load()
	doc, version, err := s.store.GetFleet(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if cur.version != 0 {
			cur = s.localFleetState()
			s.fleet.Store(cur)
		}
		return cur, nil
	case err != nil:
		return cur, err
	case version == cur.version:
		return cur, nil
	case version < cur.version:
		// PUT /v1/fleet stored a newer one since this read began.
		return cur, nil
	}
	f, _, err := spec.ParseFleetWith([]byte(doc), fmt.Sprintf("fleet v%d", version), spec.FleetOptions{Backends: s.fleetBackends(true)})
	if err != nil {
		s.log.Error("the stored fleet does not parse; keeping the previous one", "version", version, "err", err)
		return cur, nil
	}
	next := newFleetState(f, version, fmt.Sprintf("fleet v%d", version))
	s.setFleet(next)
	return next, nil
}

// setFleet installs fs unless a newer version is installed already.
func (s *Server) setFleet(fs *fleetState) {
	for {
		cur := s.fleet.Load()
		if cur.version > fs.version {
			return
		}
		if s.fleet.CompareAndSwap(cur, fs) {
			return
		}
	}
}

func (s *Server) handleGetFleet(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	doc, version, err := s.store.GetFleet(r.Context())
	if errors.Is(err, store.ErrNotFound) {
		return notFound("no fleet was applied; the server runs its built-in local fleet (cluster %q: %d x %s on this machine)",
			LocalCluster, s.cfg.LocalGPUs, s.cfg.LocalGPU)
	}
	if err != nil {
		return internalError(err)
	}
	writeJSON(w, http.StatusOK, api.FleetDoc{Version: version, Fleet: doc})
	return nil
}

func (s *Server) handlePutFleet(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	if !p.admin() {
		return forbidden("applying a fleet needs an admin token")
	}
	var req api.FleetRequest
	if e := decodeBody(w, r, maxFleetBody, &req); e != nil {
		return e
	}
	f, warns, err := spec.ParseFleetWith([]byte(req.Fleet), "fleet.yaml", spec.FleetOptions{Backends: s.fleetBackends(false)})
	if err != nil {
		return specError(err)
	}
	version, err := s.store.PutFleet(r.Context(), req.Fleet, p.actor(), s.now().UTC())
	if err != nil {
		return internalError(err)
	}
	s.setFleet(newFleetState(f, version, fmt.Sprintf("fleet v%d", version)))
	ws := make([]string, 0, len(warns))
	for _, wn := range warns {
		ws = append(ws, wn.String())
	}
	writeJSON(w, http.StatusOK, api.FleetApplied{Version: version, Warnings: ws})
	return nil
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

// fleetBackends are the backends a fleet applied to this server may name:
// Config.Drivers'. A stored fleet is read back (stored) with the
// vocabulary's kinds too, so that one an older server accepted (backend:
// cloud) still loads, while one naming a driver's backend keeps its block.
// Nil (any kind the vocabulary knows) without Config.Drivers.
func (s *Server) fleetBackends(stored bool) []spec.Backend {
	if s.cfg.Drivers == nil {
		return nil
	}
	var out []spec.Backend
	for _, d := range s.cfg.Drivers {
		out = append(out, spec.Backend{Name: d.Name, Aliases: d.Aliases, Check: d.Check})
	}
	if stored {
		for _, k := range model.BackendKinds {
			if !slices.ContainsFunc(out, func(b spec.Backend) bool { return b.Name == string(k) }) {
				out = append(out, spec.Backend{Name: string(k)})
			}
		}
		if !slices.ContainsFunc(out, func(b spec.Backend) bool { return slices.Contains(b.Aliases, "k8s") }) {
			out = append(out, spec.Backend{Name: string(model.BackendKubernetes), Aliases: []string{"k8s"}})
		}
	}
	return out
}

// backendOf returns the cached backend of c, making it on first use, when
// c's definition changed, or again while making it fails.
func (s *Server) backendOf(c model.Cluster) (backend.Backend, error) {
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
func (s *Server) backendFor(ctx context.Context, cluster string) (backend.Backend, error) {
	if c := s.fleet.Load().fleet.Cluster(cluster); c != nil {
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
func (s *Server) knownBackends() []backend.Backend {
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
