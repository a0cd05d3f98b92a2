package httpapi

import (
	_ "embed"
	"errors"
	"net/http"
	"strconv"

	"gpubroker/internal/server/web"
)

// handlerFunc is an API handler: it writes its answer and returns nil, or
// returns the error to answer with (before writing anything).
type handlerFunc func(w http.ResponseWriter, r *http.Request, p principal) *apiError

// route is one endpoint. The table below is the API: the mux is built from
// it and a test checks the OpenAPI document lists exactly these.
type route struct {
	method, path string
	h            handlerFunc
}

func (s *Server) apiRoutes() []route {
	return []route{
		{"GET", "/metrics", s.handleMetrics},
		{"GET", "/v1/openapi.json", s.handleOpenAPI},
		{"POST", "/v1/jobs", s.handleSubmit},
		{"GET", "/v1/jobs", s.handleListJobs},
		{"GET", "/v1/jobs/{id}", s.handleGetJob},
		{"POST", "/v1/jobs/{id}/cancel", s.handleCancel},
		{"GET", "/v1/jobs/{id}/events", s.handleEvents},
		{"GET", "/v1/jobs/{id}/attempts", s.handleAttempts},
		{"GET", "/v1/jobs/{id}/logs", s.handleLogs},
		{"GET", "/v1/fleet", s.handleGetFleet},
		{"PUT", "/v1/fleet", s.handlePutFleet},
		{"GET", "/v1/clusters", s.handleClusters},
		{"GET", "/v1/teams", s.handleTeams},
		{"GET", "/v1/usage", s.handleUsage},
		{"POST", "/v1/plan", s.handlePlan},
		{"POST", "/v1/tokens", s.handleCreateToken},
		{"GET", "/v1/tokens", s.handleListTokens},
		{"POST", "/v1/tokens/{id}/revoke", s.handleRevokeToken},
	}
}

// routes builds the mux: /healthz without auth, every other route behind
// authentication, and a catch-all that answers 401 without a token and a
// JSON 404 with one, so that no path reveals anything to an anonymous
// caller.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	for _, rt := range s.apiRoutes() {
		mux.Handle(rt.method+" "+rt.path, s.authed(rt.h))
	}
	mux.Handle("/", s.authed(func(w http.ResponseWriter, r *http.Request, p principal) *apiError {
		return notFound("no endpoint %s %s; GET /v1/openapi.json lists them", r.Method, r.URL.Path)
	}))
	// The dashboard (internal/server/web): pages at /, a client of /v1.
	web.New(web.Config{API: mux, Now: s.now, Logger: s.log, Backends: s.cfg.StoredFleetBackends, Who: func(r *http.Request) (web.Principal, error) {
		p, aerr := s.authenticate(r)
		if aerr == nil && p.tok.Role == RoleMetrics {
			aerr = metricsOnly()
		}
		if aerr != nil {
			return web.Principal{}, errors.New(aerr.Message)
		}
		return web.Principal{Team: p.tok.Team, Role: p.tok.Role}, nil
	}, CSRFKey: s.csrfKey}).Register(mux)
	return s.countRequests(mux)
}

// authed authenticates the request, runs h and writes its error.
func (s *Server) authed(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, aerr := s.authenticate(r)
		if aerr == nil && p.tok.Role == RoleMetrics && r.URL.Path != "/metrics" {
			aerr = metricsOnly()
		}
		if aerr == nil {
			aerr = h(w, r, p)
		}
		if aerr != nil {
			if aerr.cause != nil {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", aerr.cause)
			}
			writeError(w, aerr)
		}
	})
}

// statusWriter remembers the status code for the request counter. Unwrap
// lets http.ResponseController reach the real writer (Flush for logs).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(strconv.Itoa(sw.code)).Inc()
	})
}

// handleMetrics serves fleet-wide counters (every team's queue and GPUs),
// so only to admin and metrics tokens.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	if !p.readsMetrics() {
		return forbidden("/metrics shows every team's counters; it needs an admin or a metrics token (gpubroker token create --role metrics)")
	}
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}

//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request, p principal) *apiError {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
	return nil
}
