package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/server/clock"
	"gpubroker/internal/server/control"
	"gpubroker/internal/server/httpapi"
	"gpubroker/internal/server/view"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// Deadlines bound a server's calls to backends (Config.Deadlines).
type Deadlines = control.Deadlines

// Defaults for the zero values of Config.
const (
	DefaultListen        = "127.0.0.1:8470"
	DefaultRoundInterval = time.Second
	// DefaultClusterTimeout is how long a cluster may not answer before
	// its attempts are lost and placed elsewhere.
	DefaultClusterTimeout = 30 * time.Second
	// Default deadlines of backend calls (Config.Deadlines).
	DefaultHealthTimeout  = control.DefaultHealthDeadline
	DefaultObserveTimeout = control.DefaultObserveDeadline
	DefaultBackendTimeout = control.DefaultCallDeadline
	DefaultLocalGPU       = model.GPUModel("H100")
	DefaultLocalGPUs      = 8
	// DefaultIdleTimeout closes idle keep-alive connections (3,000 idle
	// connections were once held without end).
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxConns is the most connections served at once.
	DefaultMaxConns = 4096
	// DefaultReadHeaderTimeout bounds the reading of a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds the reading of a whole request, body
	// included (3,000 slow-body uploads were once held without end).
	DefaultReadTimeout = time.Minute
	// DefaultWriteTimeout bounds the writing of a response. Log streams
	// (GET /v1/jobs/{id}/logs) lift both deadlines: they last as long as
	// the job, and MaxConns bounds how many there are.
	DefaultWriteTimeout = 2 * time.Minute
)

// Names of the built-in local fleet.
const (
	LocalCluster = view.LocalCluster
	LocalPool    = view.LocalPool
)

// LocalFleet is the fleet a server runs while none was applied: this
// machine as one committed (free) pool of one node.
func LocalFleet(gpu model.GPUModel, gpus int) *model.Fleet { return view.LocalFleet(gpu, gpus) }

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
	// Clock is the wall clock of the whole control plane: the API's
	// timestamps, the reconciler's rounds and their pacing (default the
	// machine's, or one reading Now when Now is set).
	Clock clock.Clock
	// Now, when set and Clock is not, is where the default clock reads
	// the time.
	Now func() time.Time
	// RoundInterval is the longest time between reconcile rounds (default
	// 1s); submissions and backend changes start rounds sooner (see
	// internal/server/control).
	RoundInterval time.Duration
	// ClusterTimeout is how long a cluster may fail its health check or
	// observation, round after round, before it is unhealthy for good:
	// every attempt dispatched or running there is lost and becomes a new
	// attempt placed elsewhere (default 30s). Its pools take no new work
	// from its first failed round on.
	ClusterTimeout time.Duration
	// Deadlines bound every call to a backend: a cluster's health check
	// (default 10s) and observation (10s), and Submit, Cancel, Forget,
	// Scale and opening logs (60s). Checks run per cluster, beside the
	// rounds: a cluster that hangs is UNHEALTHY ("health check timed out
	// after 10s") and delays no round (internal/server/control, probe.go).
	Deadlines control.Deadlines
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// LocalGPU and LocalGPUs describe the built-in local fleet used while
	// no fleet was applied: one cluster "local" (provider onprem, region
	// local, backend local) with one committed pool "local" of one node
	// with LocalGPUs GPUs of model LocalGPU, at price 0. Defaults: H100, 8.
	LocalGPU  model.GPUModel
	LocalGPUs int
	// IdleTimeout is how long a keep-alive connection may sit idle before
	// the server closes it (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxConns bounds the connections served at once (default
	// DefaultMaxConns); past it, new connections wait to be accepted.
	MaxConns int
	// ReadHeaderTimeout, ReadTimeout and WriteTimeout bound the reading of
	// a request's headers, of the whole request and the writing of its
	// response (defaults DefaultReadHeaderTimeout, DefaultReadTimeout,
	// DefaultWriteTimeout). A log stream lifts the last two.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	// ScaleDownAfter is how long an elastic pool must need fewer nodes
	// than it has before the provisioning controller lets the idle ones
	// go (default 2 minutes).
	ScaleDownAfter time.Duration
	// MaxLogBytes caps the output each attempt may store
	// (backend.Spec.MaxLogBytes): default DefaultMaxLogBytes; negative:
	// no cap.
	MaxLogBytes int64
}

// DefaultMaxLogBytes is the log cap of an attempt unless configured.
const DefaultMaxLogBytes = 1 << 30

// Server is the control plane: the HTTP API (internal/server/httpapi)
// over the controllers (internal/server/control), wired here. Handler may
// be used without Open (the reconciler then does not run); Open starts
// the listener and the reconciler, Close stops both.
type Server struct {
	cfg Config
	log *slog.Logger
	ctl *control.Controller
	api *httpapi.Server

	mu       sync.Mutex
	httpSrv  *http.Server
	listener net.Listener
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
	switch {
	case cfg.Clock != nil:
	case cfg.Now != nil:
		cfg.Clock = clock.WithNow(cfg.Now)
	default:
		cfg.Clock = clock.Real()
	}
	if cfg.RoundInterval <= 0 {
		cfg.RoundInterval = DefaultRoundInterval
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ClusterTimeout <= 0 {
		cfg.ClusterTimeout = DefaultClusterTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.MaxLogBytes == 0:
		cfg.MaxLogBytes = DefaultMaxLogBytes
	case cfg.MaxLogBytes < 0:
		cfg.MaxLogBytes = 0
	}
	if cfg.LocalGPU == "" {
		cfg.LocalGPU = DefaultLocalGPU
	}
	if cfg.LocalGPUs <= 0 {
		cfg.LocalGPUs = DefaultLocalGPUs
	}
	id, err := brokerID(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("server: hostname: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := checkStoreIdentity(ctx, cfg.Store, cfg.StateDir); err != nil {
		return nil, err
	}
	ctl, err := control.New(control.Config{
		Store: cfg.Store, Backends: cfg.Backends, Clock: cfg.Clock, RoundInterval: cfg.RoundInterval,
		ClusterTimeout: cfg.ClusterTimeout, Logger: cfg.Logger, LocalGPU: cfg.LocalGPU, LocalGPUs: cfg.LocalGPUs,
		LeaderID: id, Host: host, Registry: reg, FleetBackends: fleetBackends(cfg.Drivers, true), ScaleDownAfter: cfg.ScaleDownAfter,
		MaxLogBytes: cfg.MaxLogBytes, Deadlines: cfg.Deadlines,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	api := httpapi.New(httpapi.Config{
		Store: cfg.Store, Control: ctl, Clock: cfg.Clock, Logger: cfg.Logger, StateDir: cfg.StateDir,
		LocalGPU: cfg.LocalGPU, LocalGPUs: cfg.LocalGPUs, Registry: reg, Gatherer: reg,
		FleetBackends: fleetBackends(cfg.Drivers, false), StoredFleetBackends: fleetBackends(cfg.Drivers, true),
	})
	if err := api.BootstrapAdmin(ctx); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: cfg.Logger, ctl: ctl, api: api}, nil
}

// Handler is the whole HTTP API: /healthz, /metrics and /v1.
func (s *Server) Handler() http.Handler { return s.api.Handler() }

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
	if err := s.ctl.Open(); err != nil {
		ln.Close()
		return fmt.Errorf("server: %w", err)
	}
	ln = newLimitListener(ln, s.cfg.MaxConns)
	s.listener = ln
	// A ReadTimeout would also cancel a long handler's context once it
	// passes (golang/go#18447), and a WriteTimeout cut its writes: the log
	// stream lifts both deadlines for its connection (httpapi.handleLogs).
	s.httpSrv = &http.Server{
		Handler:           s.api.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
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
	srv, done := s.httpSrv, s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- s.ctl.Close(ctx) }()
	err := srv.Shutdown(ctx)
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	if errCtl := <-ctlDone; err == nil {
		err = errCtl
	}
	return err
}

// reconcile runs one round on the caller's goroutine (tests and
// benchmarks; never while the server is open).
func (s *Server) reconcile(ctx context.Context) error { return s.ctl.Reconcile(ctx) }

// route is one endpoint of the API, for tests that walk them all.
type route struct{ method, path string }

// apiRoutes lists the API's authenticated endpoints.
func (s *Server) apiRoutes() []route {
	var out []route
	for _, e := range s.api.Endpoints() {
		out = append(out, route{e.Method, e.Path})
	}
	return out
}

// randomID is prefix + 12 random hex digits.
func randomID(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return prefix + hex.EncodeToString(b[:])
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

// fleetBackends are the backends a fleet may name on a server with these
// drivers: the drivers' own for a fleet applied to it (PUT /v1/fleet). A
// stored fleet is read back (stored) with the vocabulary's kinds too, so
// that one an older server accepted (backend: cloud) still loads, while
// one naming a driver's backend keeps its block. Nil (any kind the
// vocabulary knows) without drivers.
func fleetBackends(drivers []backend.Driver, stored bool) []spec.Backend {
	if drivers == nil {
		return nil
	}
	var out []spec.Backend
	for _, d := range drivers {
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
