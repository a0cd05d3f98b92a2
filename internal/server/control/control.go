package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/server/clock"
	"gpubroker/internal/server/view"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// Config is what a Controller needs; the server fills every field
// (internal/server.Config documents them and their defaults).
type Config struct {
	Store    store.Store
	Backends func(cluster model.Cluster) (backend.Backend, error)
	Clock    clock.Clock
	// RoundInterval is the longest time between rounds; ClusterTimeout
	// how long a cluster may not answer before its attempts are lost.
	RoundInterval  time.Duration
	ClusterTimeout time.Duration
	Logger         *slog.Logger
	// LocalGPU and LocalGPUs describe the built-in local fleet.
	LocalGPU  model.GPUModel
	LocalGPUs int
	// LeaderID is this broker's name as the leader of a shared store.
	LeaderID string
	// Host is the machine this broker runs on, as its beats in a shared
	// store name it (store.Members); it must match the host its local
	// backends record (backend.HostBound).
	Host string
	// Registry takes the controller's metrics.
	Registry prometheus.Registerer
	// FleetBackends are the backends a stored fleet may name, each with
	// its driver's check (spec.FleetOptions.Backends); nil: any backend
	// the vocabulary knows.
	FleetBackends []spec.Backend
	// ScaleDownAfter is how long an elastic pool must need fewer nodes
	// than it has before the provisioning controller lets the idle ones
	// go (default 2 minutes).
	ScaleDownAfter time.Duration
	// MaxLogBytes is every attempt's log cap (backend.Spec.MaxLogBytes);
	// 0: none.
	MaxLogBytes int64
	// Deadlines bound every call to a backend (zero fields: defaults).
	Deadlines Deadlines
}

// Controller is the control side of the server: the reconciler, whose
// rounds run the controllers (see controllers), and what the HTTP API
// asks of it (the methods of httpapi.Control). New makes it; Open starts
// its goroutine, Close stops it and waits.
type Controller struct {
	cfg      Config
	store    store.Store
	log      *slog.Logger
	clock    clock.Clock
	now      func() time.Time
	metrics  *metrics
	leaderID string

	// fleet is the newest parsed fleet; the reconciler refreshes it each
	// round and PUT /v1/fleet sets it at once (SetFleet).
	fleet atomic.Pointer[view.Fleet]
	// fleetErr is the newest stored fleet version that does not validate
	// while an earlier one stays in force (invalidFleet).
	fleetErr atomic.Pointer[fleetError]
	// view is what the last round saw, for the read endpoints.
	view atomic.Pointer[view.Round]

	// waits holds why each pending job waited in the last round
	// ("Reason: detail"), merged into API answers (see Explain).
	waitMu sync.RWMutex
	waits  map[int64]string

	// wake asks the reconciler for a round now (see Kick).
	wake chan struct{}
	// watch forwards the backends' changes to the reconciler.
	watch *watchers

	// rec is the reconciler's state, touched only by its goroutine (and
	// by tests calling reconcile directly, never concurrently).
	rec reconcilerState
	// backends caches one backend per cluster; shared with API calls
	// (cancel, logs), hence the lock.
	backendMu sync.Mutex
	backends  map[string]*clusterBackend

	mu   sync.Mutex
	stop context.CancelFunc
	done chan struct{}
	// prov is the provisioning controller's state (provision.go).
	prov provisioner
	// deadlines bound backend calls; probes run the clusters' health
	// checks and observations (probe.go).
	deadlines Deadlines
	probes    probes
}

// New makes a controller and reads the applied fleet, so that requests
// before the first round already validate against it.
func New(cfg Config) (*Controller, error) {
	if cfg.Store == nil || cfg.Backends == nil || cfg.Clock == nil || cfg.Logger == nil || cfg.Registry == nil {
		return nil, errors.New("control: Config.Store, Backends, Clock, Logger and Registry are required")
	}
	s := &Controller{
		cfg:       cfg,
		store:     cfg.Store,
		log:       cfg.Logger,
		clock:     cfg.Clock,
		now:       cfg.Clock.Now,
		metrics:   newMetrics(cfg.Registry),
		leaderID:  cfg.LeaderID,
		waits:     map[int64]string{},
		backends:  map[string]*clusterBackend{},
		wake:      make(chan struct{}, 1),
		watch:     newWatchers(),
		deadlines: cfg.Deadlines.withDefaults(),
	}
	s.rec.init()
	s.fleet.Store(s.localFleetState())
	ctx, cancel := context.WithTimeout(context.Background(), contextTimeout)
	defer cancel()
	if _, err := s.refreshFleet(ctx); err != nil {
		return nil, fmt.Errorf("reading the fleet: %w", err)
	}
	return s, nil
}

// Open starts the reconciler: rounds until Close (see runReconciler).
func (s *Controller) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("control: already open")
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	go func() {
		defer close(s.done)
		s.runReconciler(ctx)
	}()
	return nil
}

// Close stops the reconciler after its current round and waits for it
// (and its watchers) until ctx is done. Submits in flight are cancelled;
// attempts running on backends keep running.
func (s *Controller) Close(ctx context.Context) error {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reconcile runs one round now, on the caller's goroutine. It must not run
// while the controller is open (rounds are never concurrent).
func (s *Controller) Reconcile(ctx context.Context) error { return s.reconcile(ctx) }

// ReadAll makes the next round read every active job from the store, as
// the first one does, instead of the changes since the last round.
func (s *Controller) ReadAll() { s.rec.active = nil }

// Waiting is how many pending jobs the last round left waiting.
func (s *Controller) Waiting() int {
	s.waitMu.RLock()
	defer s.waitMu.RUnlock()
	return len(s.waits)
}

// contextTimeout bounds store calls made outside a round or request.
const contextTimeout = 30 * time.Second

// The API's side (httpapi.Control).

// Fleet is the fleet in force.
func (s *Controller) Fleet() *view.Fleet { return s.fleet.Load() }

// SetFleet installs fs, a fleet just stored, unless a newer one is in
// force already.
func (s *Controller) SetFleet(fs *view.Fleet) { s.setFleet(fs) }

// View is what the last round saw, when it ran against the fleet in force;
// otherwise that fleet with everything free.
func (s *Controller) View() *view.Round { return s.currentView() }

// Explain fills in why each pending job of jobs waited in the last round,
// and that work queued ahead in an engine waits there.
func (s *Controller) Explain(jobs []*store.Job) { s.mergeWaits(jobs) }

// Kick asks for a round soon; it never blocks (requests coalesce).
func (s *Controller) Kick() { s.kick() }

// Cancel moves j to CANCELLED and stops its attempt (see cancelJob).
func (s *Controller) Cancel(ctx context.Context, j *store.Job, actor string) (*store.Job, error) {
	return s.cancelJob(ctx, j, actor)
}

// Logs opens the output of one attempt of j (see openLogs).
func (s *Controller) Logs(ctx context.Context, j *store.Job, attempt int, follow bool) (io.ReadCloser, error) {
	return s.openLogs(ctx, j, attempt, follow)
}

// TailLogs is the end of the output of one attempt of j (see tailLogs).
func (s *Controller) TailLogs(ctx context.Context, j *store.Job, attempt, lines int, maxBytes int64) ([]byte, error) {
	return s.tailLogs(ctx, j, attempt, lines, maxBytes)
}
