package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// Defaults for the zero values of Config.
const (
	DefaultListen        = "127.0.0.1:8470"
	DefaultRoundInterval = time.Second
	// DefaultClusterTimeout is how long a cluster may not answer before
	// its attempts are lost and placed elsewhere.
	DefaultClusterTimeout = 30 * time.Second
	DefaultLocalGPU       = model.GPUModel("H100")
	DefaultLocalGPUs      = 8
)

// Config is what a Server needs. Store and Backends are required.
type Config struct {
	Store store.Store
	// Backends returns the backend that runs work on a cluster. It is
	// called once per cluster (again when the cluster's definition
	// changes, and on every round while it fails). An error makes the
	// cluster unhealthy: its pools take no new work. What it returns
	// stays the caller's to close after Close.
	Backends func(cluster model.Cluster) (backend.Backend, error)
	// Drivers are the backend drivers of this build (only their names,
	// aliases and Check are used here): a fleet applied with PUT
	// /v1/fleet may name only these backends, and each driver checks its
	// clusters. A stored fleet is read back with the vocabulary's kinds
	// too, so that one an older server accepted still loads. Nil: any
	// backend the vocabulary knows (model.BackendKinds).
	Drivers []backend.Driver
	// StateDir holds admin.token. Empty: no token file is written.
	StateDir string
	// Listen is the HTTP address (default 127.0.0.1:8470; ":0" style
	// addresses pick a free port, see Addr).
	Listen string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RoundInterval is the longest time between reconcile rounds (default
	// 1s); submissions and backend changes start rounds sooner (see
	// runReconciler).
	RoundInterval time.Duration
	// ClusterTimeout is how long a cluster may fail its health check or
	// observation, round after round, before it is unhealthy for good:
	// every attempt dispatched or running there is lost and becomes a new
	// attempt placed elsewhere (default 30s). Its pools take no new work
	// from its first failed round on.
	ClusterTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// LocalGPU and LocalGPUs describe the built-in local fleet used while
	// no fleet was applied: one cluster "local" (provider onprem, region
	// local, backend local) with one committed pool "local" of one node
	// with LocalGPUs GPUs of model LocalGPU, at price 0. Defaults: H100, 8.
	LocalGPU  model.GPUModel
	LocalGPUs int
}

// Server is the control plane. Handler may be used without Open (the
// reconciler then does not run); Open starts the listener and the
// reconciler, Close stops both.
type Server struct {
	cfg      Config
	store    store.Store
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	handler  http.Handler
	tokens   tokenCache
	leaderID string

	// fleet is the newest parsed fleet; the reconciler refreshes it each
	// round and PUT /v1/fleet sets it at once.
	fleet atomic.Pointer[fleetState]
	// view is what the last round saw, for the read endpoints.
	view atomic.Pointer[roundView]

	// waits holds why each pending job waited in the last round
	// ("Reason: detail"), merged into API answers (see waitReason).
	waitMu sync.RWMutex
	waits  map[int64]string

	// wake asks the reconciler for a round now (see kick).
	wake chan struct{}

	// rec is the reconciler's state, touched only by its goroutine (and
	// by tests calling reconcile directly, never concurrently).
	rec reconcilerState
	// prov is the provisioning controller's state (provision.go).
	prov provisioner
	// backends caches one backend per cluster; shared with API handlers
	// (cancel, logs), hence the lock.
	backendMu sync.Mutex
	backends  map[string]*clusterBackend

	mu       sync.Mutex
	httpSrv  *http.Server
	listener net.Listener
	stop     context.CancelFunc
	done     chan struct{}
}

// New checks cfg, and on an empty store creates an admin token for team
// "default" and writes it to StateDir/admin.token (mode 0600).
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Config.Store is required")
	}
	if cfg.Backends == nil {
		return nil, errors.New("server: Config.Backends is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RoundInterval <= 0 {
		cfg.RoundInterval = DefaultRoundInterval
	}
	if cfg.ClusterTimeout <= 0 {
		cfg.ClusterTimeout = DefaultClusterTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LocalGPU == "" {
		cfg.LocalGPU = DefaultLocalGPU
	}
	if cfg.LocalGPUs <= 0 {
		cfg.LocalGPUs = DefaultLocalGPUs
	}
	s := &Server{
		cfg:      cfg,
		store:    cfg.Store,
		log:      cfg.Logger,
		now:      cfg.Now,
		metrics:  newMetrics(),
		waits:    map[int64]string{},
		backends: map[string]*clusterBackend{},
		wake:     make(chan struct{}, 1),
	}
	s.rec.init()
	id, err := brokerID(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	s.leaderID = id
	s.fleet.Store(s.localFleetState())
	s.handler = s.routes()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.bootstrapAdmin(ctx); err != nil {
		return nil, err
	}
	// Read the applied fleet now, so requests before the first round
	// already validate against it.
	if _, err := s.refreshFleet(ctx); err != nil {
		return nil, fmt.Errorf("server: reading the fleet: %w", err)
	}
	return s, nil
}

// Handler is the whole HTTP API: /healthz, /metrics and /v1.
func (s *Server) Handler() http.Handler { return s.handler }

// Open starts the HTTP listener on Config.Listen and the reconciler. It
// returns once the listener is bound.
func (s *Server) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("server: already open")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listening on %s: %w", s.cfg.Listen, err)
	}
	s.listener = ln
	s.httpSrv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.done = make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		s.runReconciler(runCtx)
	}()
	go func() {
		wg.Wait()
		close(s.done)
	}()
	s.log.Info("gpubroker server listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the listener is bound to ("" before Open).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Close stops the reconciler (after its current round) and shuts the HTTP
// server down gracefully, waiting for both until ctx is done. Attempts
// running on backends keep running; the next server finds them again.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	srv, stop, done := s.httpSrv, s.stop, s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	stop()
	err := srv.Shutdown(ctx)
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Round pacing (see runReconciler).
const (
	// minRoundRest and maxRoundRest bound the rest after a round, which is
	// otherwise roundRestFactor times as long as the round took.
	minRoundRest = 20 * time.Millisecond
	maxRoundRest = 250 * time.Millisecond
	// roundRestFactor is the rest per second a round took: with 2 the
	// reconciler takes at most a third of a core, however busy its
	// watches are. The engines often share the broker's machine, and every
	// CPU-second a round spends is taken from them.
	roundRestFactor = 2
	// calmRoundRest is the least rest after a round that left no job
	// pending or admitted, when a backend's change (not a submission) ends
	// it: the next round can then only record what the
	// engines did (attempts started or ended), which may wait a quarter of
	// a second; running it for every few events of a burst of starts and
	// completions takes CPU from the engines (a 500-job burst on a
	// two-core machine ran 90 such rounds).
	calmRoundRest = 250 * time.Millisecond
	// pollInFlight is the round interval, when shorter than RoundInterval,
	// while some cluster holding work cannot announce changes (its backend
	// is no backend.Watcher): its attempts end unseen, so look soon.
	pollInFlight = 250 * time.Millisecond
)

// runReconciler runs rounds until ctx is done. A failed round is logged
// and retried later: the reconciler is level-triggered, so a later round
// repairs what an earlier one left.
//
// A round runs RoundInterval after the previous one, or sooner when
// something changed: a submission (kick), a backend's
// backend.Watcher.Changes, or a Submit that returned (see dispatcher); and
// at most pollInFlight after it while work holds a cluster whose backend
// does not watch. After a round the reconciler rests roundRestFactor
// times as long as the round took, within minRoundRest and maxRoundRest,
// so that a storm of changes cannot keep it running back to back (and at
// least calmRoundRest before a returned Submit, or a backend's change when
// no job waits to be placed or dispatched, is taken up: see
// calmRoundRest); the time it waited for room for its Submits and for its
// Forgets does not count (the engine, not the broker, was busy then: a
// round that dispatched a burst of 200 jobs in 1.5 s must not keep the
// next burst out for another maxRoundRest). Changes during the rest are
// taken up together by the next round.
func (s *Server) runReconciler(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		started := time.Now()
		if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile round failed", "err", err)
		}
		rest := min(max(minRoundRest, roundRestFactor*(time.Since(started)-s.rec.waited)), maxRoundRest)
		earliest := time.Now().Add(rest)
		calm, quiet := earliest, time.Now().Add(max(rest, calmRoundRest))
		if !s.rec.queued {
			calm = quiet
		}
		interval := s.cfg.RoundInterval
		if s.pollingInFlight() {
			interval = min(interval, pollInFlight)
		}
		timer.Reset(max(rest, interval))
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.wake)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.rec.disp.wake)},
		}
		for _, b := range s.knownBackends() {
			if w, ok := b.(backend.Watcher); ok {
				cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.Changes())})
			}
		}
		chosen, _, _ := reflect.Select(cases)
		switch chosen {
		case 0:
			return
		case 1:
			continue
		case 2:
			// A submission: rest out the remainder, then run.
		case 3:
			// A Submit returned: recording it is no engine's business, so
			// it waits like a backend's change after a calm round.
			earliest = quiet
		default:
			// A backend's change.
			earliest = calm
		}
		timer.Reset(max(0, time.Until(earliest)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// kick asks the reconciler for a round soon; it never blocks (requests
// coalesce).
func (s *Server) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pollingInFlight reports whether, as of the last round, a cluster whose
// backend is no backend.Watcher holds work (admitted, dispatched or
// running attempts).
func (s *Server) pollingInFlight() bool {
	v := s.view.Load()
	if v == nil || v.snap == nil || len(v.snap.Running) == 0 {
		return false
	}
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	for _, a := range v.snap.Running {
		cb, ok := s.backends[a.Pool.Cluster]
		if !ok || cb.err != nil {
			continue
		}
		if _, watches := cb.b.(backend.Watcher); !watches {
			return true
		}
	}
	return false
}

// brokerID is this broker's name as a leader of a shared store: kept in
// StateDir/broker.id, so that a broker restarted on the same state
// directory takes its own lease back at once instead of waiting for it to
// expire.
func brokerID(stateDir string) (string, error) {
	if stateDir == "" {
		return randomID("broker-"), nil
	}
	path := filepath.Join(stateDir, "broker.id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", fmt.Errorf("server: creating the state directory: %w", err)
	}
	id := randomID("broker-")
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("server: writing %s: %w", path, err)
	}
	return id, nil
}
