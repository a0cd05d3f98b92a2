package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/api"
	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
	"gpubroker/internal/spec"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// testEnv is a server on a real SQLite store and a real local backend,
// listening on a free loopback port.
type testEnv struct {
	t        *testing.T
	dir      string
	stateDir string
	st       *sqlite.Store
	be       *local.Backend
	srv      *Server
	url      string
	admin    string
}

type envOption func(*Config)

func newTestEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	e := newStoppedEnv(t)
	e.start(opts...)
	t.Cleanup(e.drain)
	b, err := os.ReadFile(filepath.Join(e.stateDir, AdminTokenFile))
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	e.admin = strings.TrimSpace(string(b))
	return e
}

// newStoppedEnv is a testEnv's store and backend with no server started.
func newStoppedEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &testEnv{t: t, dir: dir, stateDir: filepath.Join(dir, "state"), st: st}
	e.be = e.newBackend()
	return e
}

// wrapBackend is an envOption under which the server gets w instead of
// the env's backend; set hands w that backend, once, before the server
// first uses w.
func wrapBackend(w backend.Backend, set func(inner backend.Backend)) envOption {
	var once sync.Once
	return func(c *Config) {
		next := c.Backends
		c.Backends = func(cl model.Cluster) (backend.Backend, error) {
			b, err := next(cl)
			if err != nil {
				return nil, err
			}
			once.Do(func() { set(b) })
			return w, nil
		}
	}
}

func (e *testEnv) newBackend() *local.Backend {
	be, err := local.New(filepath.Join(e.dir, "local"), local.Options{GPUs: 4, Grace: 300 * time.Millisecond, LogPoll: 20 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	return be
}

func (e *testEnv) config(opts ...envOption) Config {
	cfg := Config{
		Store: e.st,
		Backends: func(c model.Cluster) (backend.Backend, error) {
			if c.Backend == model.BackendLocal {
				return e.be, nil
			}
			return nil, fmt.Errorf("no %s backend in tests", c.Backend)
		},
		StateDir:      e.stateDir,
		Listen:        "127.0.0.1:0",
		RoundInterval: 20 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		LocalGPU:      "H100",
		LocalGPUs:     4,
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// start makes and opens a server on the env's store and backend.
func (e *testEnv) start(opts ...envOption) {
	e.t.Helper()
	srv, err := New(e.config(opts...))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.srv, e.url = srv, "http://"+srv.Addr()
	e.t.Cleanup(func() { e.stop() })
}

func (e *testEnv) stop() {
	if e.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Close(ctx); err != nil {
		e.t.Errorf("close: %v", err)
	}
	e.srv = nil
}

// drain stops the server and every attempt still on the backend, so the
// temporary directory can go.
func (e *testEnv) drain() {
	e.stop()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sts, err := e.be.Observe(ctx)
		if err != nil {
			e.t.Errorf("drain: %v", err)
			return
		}
		busy := false
		for _, st := range sts {
			if st.Phase == backend.PhasePending || st.Phase == backend.PhaseRunning {
				busy = true
				e.be.Cancel(ctx, st.Name)
			}
		}
		if !busy {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Errorf("drain: attempts still running after 10s")
}

// do sends a request with token (none when empty) and a JSON body (none
// when nil; a string is sent as is).
func (e *testEnv) do(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// mustDo is do that fails the test unless the status is want; it decodes
// the answer into out when out is not nil.
func (e *testEnv) mustDo(want int, method, path, token string, body, out any) {
	e.t.Helper()
	code, data := e.do(method, path, token, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, data, err)
		}
	}
}

func (e *testEnv) submit(token, task string) []*store.Job {
	e.t.Helper()
	var resp submitResponse
	e.mustDo(http.StatusCreated, "POST", "/v1/jobs", token, api.SubmitRequest{Spec: task}, &resp)
	return resp.Jobs
}

func (e *testEnv) token(team, role string) string {
	e.t.Helper()
	var resp struct{ Token string }
	e.mustDo(http.StatusCreated, "POST", "/v1/tokens", e.admin, api.TokenRequest{Team: team, Role: role, Name: team + "-" + role}, &resp)
	return resp.Token
}

func (e *testEnv) job(id int64) *store.Job {
	e.t.Helper()
	var j store.Job
	e.mustDo(http.StatusOK, "GET", fmt.Sprintf("/v1/jobs/%d", id), e.admin, nil, &j)
	return &j
}

// waitState polls until the job is in one of states.
func (e *testEnv) waitState(id int64, timeout time.Duration, states ...store.State) *store.Job {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var j *store.Job
	for time.Now().Before(deadline) {
		j = e.job(id)
		for _, s := range states {
			if j.State == s {
				return j
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("job %d is %s (%s) after %v; want %v", id, j.State, j.Reason, timeout, states)
	return nil
}

func (e *testEnv) events(id int64) []store.Event {
	e.t.Helper()
	var resp struct{ Events []store.Event }
	e.mustDo(http.StatusOK, "GET", fmt.Sprintf("/v1/jobs/%d/events", id), e.admin, nil, &resp)
	return resp.Events
}

// transitions writes a job's history as "FROM>TO@attempt by ACTOR" lines.
func transitions(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%s>%s@%d by %s", ev.From, ev.To, ev.Attempt, ev.Actor)
	}
	return out
}

func task(run string, extra ...string) string {
	return "resources:\n  accelerators: H100:1\nrun: |\n  " + strings.ReplaceAll(strings.TrimSpace(run), "\n", "\n  ") + "\n" + strings.Join(extra, "\n")
}

// submitDirect stores a job without the API (for tests that play the
// reconciler's part themselves).
func (e *testEnv) submitDirect(src string) *store.Job {
	e.t.Helper()
	tk, err := spec.ParseTask([]byte(src), "task.yaml")
	if err != nil {
		e.t.Fatal(err)
	}
	w := tk.Workloads[0]
	w.Team = DefaultTeam
	j, err := e.st.CreateJob(e.t.Context(), &store.Job{Team: DefaultTeam, User: "test", Workload: w, Spec: src}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

// specFor is the backend spec of j's current attempt on GPU slot 2 of the
// local pool's node 0.
func specFor(j *store.Job, run string) backend.Spec {
	return backend.Spec{Name: backend.Name(j.ID, j.Attempt), JobID: j.ID, Attempt: j.Attempt, Team: j.Team,
		Cluster: LocalCluster, Pool: LocalPool, Nodes: []backend.Node{{Index: 0, GPUs: []int{2}}}, Run: run}
}

// submitResponse and listResponse read the answers of POST and GET
// /v1/jobs into store jobs, so tests compare states with the store's
// constants; a job's JSON is the store job's but for its workload, of
// which the tests read only the name.
type submitResponse struct {
	Jobs     []*store.Job `json:"jobs"`
	Warnings []string     `json:"warnings"`
}

type listResponse struct {
	Jobs []*store.Job `json:"jobs"`
}
