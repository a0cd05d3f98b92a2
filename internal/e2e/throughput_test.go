package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/model"
	"gpubroker/internal/server"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// Throughput benchmarks (issue 5): the same jobs through gpubroker into a
// real engine and straight into that engine, both paths in one run,
// alternated, reported as ratios. See docs/benchmarks.md.
//
// Sizes: the (500 and 2,000 jobs, 16 and 100 nodes) with
// GPUBROKER_BENCH_FULL=1, as scripts/bench.sh sets it; otherwise (CI's
// one-shot smoke, -short) a few dozen jobs on a few nodes, so that all of
// them stay well under a minute.

// fullScale reports whether the benchmarks run at the sizes.
// queueAhead is the queue_ahead of the broker's cluster (ADR 0003): the
// pool's own size (one pool's worth of work queued in the engine), or
// $TPUT_QUEUE_AHEAD nodes when set (0 admits only what fits).
func queueAhead(b *testing.B, nodes int) int {
	v := os.Getenv("TPUT_QUEUE_AHEAD")
	if v == "" {
		return nodes
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("TPUT_QUEUE_AHEAD=%q: give a number of nodes, 0 or more", v)
	}
	return n
}

func fullScale() bool {
	return os.Getenv("GPUBROKER_BENCH_FULL") == "1" && !testing.Short()
}

// submitWorkers is how many clients submit at once on either path: HTTP
// clients to the broker, sbatch processes or API clients to the engine.
// As many as the broker's dispatch has Submits in flight (16, see
// internal/server/dispatch.go), so that the direct path submits no slower.
const submitWorkers = 16

// pathTimes is one path's measurement, in seconds from its first
// submission.
type pathTimes struct {
	submitted float64 // every submission accepted
	created   float64 // Kubernetes: every Job seen in the API server
	pods      float64 // Kubernetes: every Job's pod seen
	admitted  float64 // every job started (Slurm) or bound to a node (Kubernetes)
	complete  float64 // every job complete in the engine
	api       float64 // broker only: every job SUCCEEDED in the broker's store
	// rounds and roundMean: the broker's reconcile rounds until then and
	// their mean duration, for the log.
	rounds    int
	roundMean float64
	// Slurm: from the first start until every job had started, the mean
	// number of jobs running and the share of samples in which none of the
	// path's jobs waited in Slurm's queue (for the log).
	running, dry float64
}

// pair accumulates both paths over the iterations of one benchmark.
type pair struct {
	n              int // jobs per path
	broker, direct []pathTimes
}

func (p *pair) add(broker bool, t pathTimes) {
	if broker {
		p.broker = append(p.broker, t)
	} else {
		p.direct = append(p.direct, t)
	}
}

func mean(ts []pathTimes, f func(pathTimes) float64) float64 {
	sum := 0.0
	for _, t := range ts {
		sum += f(t)
	}
	return sum / float64(len(ts))
}

// report sets the benchmark's metrics: per path the admission rate and the
// time until all complete (means over the iterations), and the ratios
// broker / direct (admissions per second) and direct / broker (time until
// all complete): at least 0.9 means the broker is not the bottleneck.
func (p *pair) report(b *testing.B) {
	if len(p.broker) == 0 || len(p.direct) == 0 {
		return
	}
	adm := func(t pathTimes) float64 { return t.admitted }
	done := func(t pathTimes) float64 { return t.complete }
	n := float64(p.n)
	ab, ad := n/mean(p.broker, adm), n/mean(p.direct, adm)
	cb, cd := mean(p.broker, done), mean(p.direct, done)
	b.ReportMetric(ab, "admit/s-broker")
	b.ReportMetric(ad, "admit/s-direct")
	b.ReportMetric(cb, "complete-s-broker")
	b.ReportMetric(cd, "complete-s-direct")
	b.ReportMetric(mean(p.broker, func(t pathTimes) float64 { return t.api }), "succeeded-s-broker")
	b.ReportMetric(ab/ad, "ratio-admit")
	b.ReportMetric(cd/cb, "ratio-complete")
	b.ReportMetric(0, "ns/op") // a whole iteration is both paths; meaningless
}

// order is which path runs first in iteration i: direct first in even
// iterations, the broker in odd ones, so that neither always runs on a
// machine the other just loaded.
func order(i int) []bool {
	if i%2 == 0 {
		return []bool{false, true}
	}
	return []bool{true, false}
}

func pathName(broker bool) string {
	if broker {
		return "broker"
	}
	return "direct"
}

// cpuSeconds is the CPU time this process (the benchmark, its clients and,
// on the broker path, the broker) has used so far, user and system.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// engineCPU is the CPU time (user and system, seconds) each engine process
// has used so far, by command name (as /proc has it, e.g.
// "kube-apiserver"), summed over the processes named in names.
func engineCPU(names ...string) map[string]float64 {
	out := map[string]float64{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		data, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15): comm may hold spaces.
		open, close := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
		if open < 0 || close < open {
			continue
		}
		comm := string(data[open+1 : close])
		want := false
		for _, n := range names {
			want = want || comm == n
		}
		f := strings.Fields(string(data[close+1:]))
		if !want || len(f) < 13 {
			continue
		}
		var ut, st float64
		fmt.Sscan(f[11], &ut)
		fmt.Sscan(f[12], &st)
		out[comm] += (ut + st) / 100 // USER_HZ
	}
	return out
}

// settle waits, at full scale, until the named engine processes together
// use less than a fifth of a core over a second (the work the previous path
// left them, e.g. garbage-collecting its namespace, done), at most a
// minute, and reports how long it waited. Each path then starts on a
// quiet engine: on this 2-core machine a path that starts while the engine
// is still busy with the one before runs up to a fifth slower, which is
// more than the difference being measured.
func settle(names ...string) time.Duration {
	if !fullScale() {
		return 0
	}
	const window, quiet, most = time.Second, 0.2, time.Minute
	start := time.Now()
	for time.Since(start) < most {
		before := engineCPU(names...)
		time.Sleep(window)
		after := engineCPU(names...)
		used := 0.0
		for _, n := range names {
			used += after[n] - before[n]
		}
		if used < quiet*window.Seconds() {
			break
		}
	}
	return time.Since(start).Round(time.Second)
}

// cpuDelta formats the CPU each named process used between two engineCPU
// readings, for the log.
func cpuDelta(before, after map[string]float64, names ...string) string {
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.1fs", n, after[n]-before[n]))
	}
	return strings.Join(parts, ", ")
}

// profileBroker starts a CPU profile of one broker path when
// TPUT_CPUPROFILE names a folder (a diagnostic: where the broker's CPU
// goes in a burst); the function it returns stops it.
func profileBroker(b *testing.B, name string) func() {
	dir := os.Getenv("TPUT_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", name, time.Now().UnixMilli())))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// load is the machine's load average, for the log next to the figures.
func load() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// brokerEnv is an in-process gpubroker server on a fresh SQLite store,
// listening on loopback, with one backend for its whole fleet.
type brokerEnv struct {
	srv   *server.Server
	st    *sqlite.Store
	api   *api
	close func() // stops the server and closes the store; idempotent
}

// startBroker starts a server whose fleet is fleetYAML and whose clusters
// all run on be, with the default round interval. Job IDs start above
// firstID: a new store would otherwise number from 1, and the engines
// remember names (gpub-ID-ATTEMPT) of earlier runs for an hour, which
// idempotent submission would take for this run's jobs.
func startBroker(b testing.TB, be backend.Backend, fleetYAML string, firstID int64) *brokerEnv {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "broker.db")
	st, err := sqlite.Open(path) // creates the schema
	if err != nil {
		b.Fatal(err)
	}
	st.Close()
	if err := seedJobID(path, firstID); err != nil {
		b.Fatal(err)
	}
	if st, err = sqlite.Open(path); err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Store:    st,
		Backends: func(model.Cluster) (backend.Backend, error) { return be, nil },
		StateDir: filepath.Join(dir, "state"),
		Listen:   "127.0.0.1:0",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		st.Close()
		b.Fatal(err)
	}
	if err := srv.Open(context.Background()); err != nil {
		st.Close()
		b.Fatal(err)
	}
	env := &brokerEnv{srv: srv, st: st}
	env.close = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Close(ctx)
		st.Close()
	})
	b.Cleanup(env.close)
	tok, err := os.ReadFile(filepath.Join(dir, "state", server.AdminTokenFile))
	if err != nil {
		b.Fatal(err)
	}
	env.api = &api{url: "http://" + srv.Addr(), token: strings.TrimSpace(string(tok)),
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: submitWorkers * 2}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.api.do(ctx, http.MethodPut, "/v1/fleet", map[string]string{"fleet": fleetYAML}, nil); err != nil {
		b.Fatalf("applying the fleet: %v", err)
	}
	return env
}

// seedJobID stores one cancelled placeholder job with ID firstID-1, so that
// the store numbers the next jobs from firstID.
func seedJobID(path string, firstID int64) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(`INSERT INTO jobs (id, team, username, workload, spec, state, attempt, reason, restarts, created, updated, seq)
		VALUES (?, 'default', 'bench', '{}', '', ?, 1, 'placeholder: job IDs of this run start above it', 0, 0, 0, 1)`,
		firstID-1, string(store.Cancelled))
	return err
}

// submit posts n copies of task to the broker from submitWorkers clients
// and returns the jobs' IDs in ID order.
func (e *brokerEnv) submit(ctx context.Context, n int, task string) ([]int64, error) {
	body, err := json.Marshal(map[string]string{"spec": task})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var ids []int64
	var firstErr error
	next := make(chan int)
	var wg sync.WaitGroup
	for range submitWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				var out struct {
					Jobs []struct {
						ID int64 `json:"id"`
					} `json:"jobs"`
				}
				err := e.postJSON(ctx, body, &out)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for _, j := range out.Jobs {
					ids = append(ids, j.ID)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if len(ids) != n {
		return nil, fmt.Errorf("submitted %d jobs, the broker answered with %d", n, len(ids))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

func (e *brokerEnv) postJSON(ctx context.Context, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.api.url+"/v1/jobs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.api.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.api.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return &statusError{code: resp.StatusCode, body: string(data)}
	}
	return json.Unmarshal(data, out)
}

// waitSucceeded waits until n jobs are SUCCEEDED in the broker's store (the
// state its API reports) and returns when, in seconds after t0. A failed
// or cancelled job is an error.
func (e *brokerEnv) waitSucceeded(ctx context.Context, n int, t0 time.Time) (float64, error) {
	for {
		counts, err := e.st.CountByState(ctx)
		if err != nil {
			return 0, err
		}
		if counts[store.Succeeded] >= n {
			return time.Since(t0).Seconds(), nil
		}
		if counts[store.Failed] > 0 {
			return 0, fmt.Errorf("%d jobs FAILED in the broker", counts[store.Failed])
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for %d jobs to succeed (have %v): %w", n, counts, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rounds reads the broker's reconcile rounds so far from its /metrics:
// how many, and their mean duration in seconds.
func (e *brokerEnv) rounds(ctx context.Context) (n int, mean float64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.api.url+"/metrics", nil)
	if err != nil {
		return 0, 0
	}
	req.Header.Set("Authorization", "Bearer "+e.api.token)
	resp, err := e.api.hc.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "gpubroker_reconcile_round_seconds_sum "); ok {
			fmt.Sscan(v, &sum)
		}
		if v, ok := strings.CutPrefix(l, "gpubroker_reconcile_round_seconds_count "); ok {
			fmt.Sscan(v, &n)
		}
	}
	if n == 0 {
		return 0, 0
	}
	return n, sum / float64(n)
}

// requireEngine skips b with how to start the engine, or fails it when
// GPUBROKER_REQUIRE_ENGINES=1.
func requireEngine(b testing.TB, msg string) {
	b.Helper()
	if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
		b.Fatal(msg + " (GPUBROKER_REQUIRE_ENGINES=1: required)")
	}
	b.Skip(msg)
}
