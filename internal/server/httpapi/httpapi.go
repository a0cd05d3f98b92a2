package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gpubroker/internal/model"
	"gpubroker/internal/server/clock"
	"gpubroker/internal/server/view"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
)

// Control is what the API needs of the control side (the reconciler,
// internal/server/control implements it): the state it publishes, and the
// few actions that touch backends or wake it. Everything else the API
// reads and writes through the store.
type Control interface {
	// Fleet is the fleet in force (never nil).
	Fleet() *view.Fleet
	// FleetError is why the store's newest fleet is not in force (it does
	// not validate with this server), or nil.
	FleetError() error
	// SetFleet installs a fleet the API has just stored, unless a newer
	// one is in force already.
	SetFleet(fs *view.Fleet)
	// View is what the last round saw, when it ran against the fleet in
	// force; otherwise that fleet with everything free. Read-only.
	View() *view.Round
	// Explain sets the Reason of each pending job of jobs to why the last
	// round left it waiting, and that of work queued ahead in an engine.
	Explain(jobs []*store.Job)
	// Kick asks for a round soon (a submission); it never blocks.
	Kick()
	// Cancel moves j to CANCELLED (retrying against the job as it is now
	// when the reconciler moved it meanwhile), bills its attempt and
	// stops it on its backend; a job that ended already comes back as
	// it is. Store errors are returned as they are (store.ErrConflict,
	// store.ErrNotFound).
	Cancel(ctx context.Context, j *store.Job, actor string) (*store.Job, error)
	// Logs opens the output of attempt of j; backend.ErrNotFound when
	// there is none (yet).
	Logs(ctx context.Context, j *store.Job, attempt int, follow bool) (io.ReadCloser, error)
	// TailLogs is the last lines lines of each node's output of attempt
	// of j, looking at no more than the last maxBytes of each, in memory
	// bounded by that; backend.ErrNotFound as for Logs.
	TailLogs(ctx context.Context, j *store.Job, attempt, lines int, maxBytes int64) ([]byte, error)
}

// Config is what the API needs; the server fills every field.
type Config struct {
	Store   store.Store
	Control Control
	Clock   clock.Clock
	Logger  *slog.Logger
	// StateDir holds admin.token (see BootstrapAdmin). Empty: no file.
	StateDir string
	// LocalGPU and LocalGPUs describe the built-in local fleet (for
	// messages).
	LocalGPU  model.GPUModel
	LocalGPUs int
	// FleetBackends are the backends a fleet applied with PUT /v1/fleet may
	// name, each with its driver's check; StoredFleetBackends those a
	// stored fleet is read back with (the dashboard). Nil: any backend the
	// vocabulary knows.
	FleetBackends       []spec.Backend
	StoredFleetBackends []spec.Backend
	// Registry takes the API's metrics; Gatherer is what /metrics serves.
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
}

// Server is the HTTP API: /healthz, /metrics, /v1 and the dashboard.
type Server struct {
	cfg     Config
	store   store.Store
	ctl     Control
	log     *slog.Logger
	clock   clock.Clock
	now     func() time.Time
	metrics *metrics
	uses    useRecorder
	health  health
	handler http.Handler
}

// metrics are the API's Prometheus series.
type metrics struct {
	handler  http.Handler
	requests *prometheus.CounterVec
}

// New makes the API over cfg.Control.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, store: cfg.Store, ctl: cfg.Control, log: cfg.Logger, clock: cfg.Clock, now: cfg.Clock.Now}
	s.metrics = &metrics{
		handler: promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpubroker_http_requests_total",
			Help: "HTTP requests served, by status code.",
		}, []string{"code"}),
	}
	cfg.Registry.MustRegister(s.metrics.requests)
	s.handler = s.routes()
	return s
}

// Handler is the whole HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Endpoint is one route of the API.
type Endpoint struct{ Method, Path string }

// Endpoints lists the authenticated routes (all but /healthz and the
// dashboard), as the mux serves them.
func (s *Server) Endpoints() []Endpoint {
	rs := s.apiRoutes()
	out := make([]Endpoint, len(rs))
	for i, rt := range rs {
		out[i] = Endpoint{rt.method, rt.path}
	}
	return out
}
