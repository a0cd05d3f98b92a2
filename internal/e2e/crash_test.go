package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var crashSeed = flag.Uint64("crash-seed", 1, "seed of the crash test's kill schedule")

// Sizes of the crash test (issue 3: 1,000 jobs, several SIGKILLs).
const (
	crashJobs       = 1000
	crashSubmitters = 8
	crashKillsMin   = 3
	crashKillsMax   = 5
)

// TestCrash submits 1,000 jobs through the HTTP API from several
// goroutines while the server is killed with SIGKILL 3-5 times at seeded
// random moments and restarted. Each job appends its key to one file.
// Afterwards every submission that was acknowledged exists under the ID it
// was given, every job SUCCEEDED, and the file holds each key exactly once:
// nothing lost, nothing run twice, nothing stuck.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test builds the binary and runs 1,000 jobs; skipped with -short")
	}
	bin := binary(t)
	dir := t.TempDir()
	ran := filepath.Join(jobsDir(t), "ran.txt") // written by the jobs, which run as another uid under root
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	srv := newServerProc(t, bin, dir,
		"--listen", strings.TrimPrefix(url, "http://"),
		"--round", "100ms",
		"--local-gpus", "H100:16")
	srv.start(url)
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	a := &api{url: url, token: strings.TrimSpace(string(token)), hc: &http.Client{Timeout: 10 * time.Second}}

	rng := rand.New(rand.NewPCG(*crashSeed, 0x9e3779b97f4a7c15))
	kills := crashKillsMin + rng.IntN(crashKillsMax-crashKillsMin+1)
	// Kill moments: the first while submissions pour in (1,000 take a
	// second or two), the others spread over the run.
	gaps := []time.Duration{100*time.Millisecond + time.Duration(rng.Int64N(int64(300*time.Millisecond)))}
	for range kills - 1 {
		gaps = append(gaps, 300*time.Millisecond+time.Duration(rng.Int64N(int64(2500*time.Millisecond))))
	}
	t.Logf("seed %d: %d kills after gaps %v", *crashSeed, kills, gaps)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	acked := make([]int64, crashJobs)
	var ackCount atomic.Int64

	// The killer: SIGKILL, then restart at once, at each gap.
	killerDone := make(chan struct{})
	var killerErr error
	go func() {
		defer close(killerDone)
		for i, g := range gaps {
			select {
			case <-ctx.Done():
				return
			case <-time.After(g):
			}
			srv.kill()
			t.Logf("kill %d at %s, %d jobs acknowledged, %d ran", i+1, time.Now().Format("15:04:05.000"), ackCount.Load(), countLines(ran))
			if err := srv.tryStart(url); err != nil {
				killerErr = fmt.Errorf("restart after kill %d: %w", i+1, err)
				cancel()
				return
			}
		}
	}()

	// The submitters: each submission is retried with the same key until
	// it is acknowledged; the acknowledged ID is what must exist later.
	var wg sync.WaitGroup
	errs := make(chan error, crashSubmitters)
	for g := range crashSubmitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < crashJobs; i += crashSubmitters {
				id, err := submit(ctx, a, jobKey(i), ran)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", jobKey(i), err)
					return
				}
				acked[i] = id
				ackCount.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	<-killerDone
	if killerErr != nil {
		t.Fatal(killerErr)
	}
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("all %d submissions acknowledged at %s", crashJobs, time.Now().Format("15:04:05.000"))

	// Bounded wait for every job to end.
	var jobs []job
	deadline := time.Now().Add(90 * time.Second)
	for {
		var err error
		jobs, err = a.allJobs(ctx)
		if err == nil && len(jobs) >= crashJobs && !slices.ContainsFunc(jobs, func(j job) bool { return !terminal(j.State) }) {
			break
		}
		if time.Now().After(deadline) {
			counts := map[string]int{}
			var stuck []string
			for _, j := range jobs {
				counts[j.State]++
				if !terminal(j.State) && len(stuck) < 5 {
					stuck = append(stuck, fmt.Sprintf("job %d %s attempt %d: %s", j.ID, j.State, j.Attempt, j.Reason))
				}
			}
			t.Fatalf("jobs not all ended after the bounded wait (err %v): %d jobs, by state %v; e.g. %s", err, len(jobs), counts, strings.Join(stuck, "; "))
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Every acknowledged submission exists under its ID and key, and
	// nothing else was created.
	byID := map[int64]job{}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	if len(jobs) != crashJobs {
		t.Errorf("%d jobs in the store, want %d (one per key)", len(jobs), crashJobs)
	}
	for i, id := range acked {
		j, ok := byID[id]
		switch {
		case !ok:
			t.Errorf("%s: acknowledged as job %d, which does not exist", jobKey(i), id)
		case !strings.Contains(j.Key, jobKey(i)):
			t.Errorf("%s: acknowledged as job %d, which has key %q", jobKey(i), id, j.Key)
		case j.State != "SUCCEEDED":
			t.Errorf("%s (job %d): %s, want SUCCEEDED (attempt %d: %s)", jobKey(i), id, j.State, j.Attempt, j.Reason)
		}
	}

	// Each job ran exactly once.
	data, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		seen[line]++
	}
	var dup, missing []string
	for i := range crashJobs {
		switch n := seen[jobKey(i)]; {
		case n == 0:
			missing = append(missing, jobKey(i))
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s x%d", jobKey(i), n))
		}
		delete(seen, jobKey(i))
	}
	if len(dup) > 0 || len(missing) > 0 || len(seen) > 0 {
		t.Errorf("ran.txt: %d keys ran more than once %v, %d never ran %v, %d unknown lines", len(dup), head(dup), len(missing), head(missing), len(seen))
	}
}

func jobKey(i int) string { return fmt.Sprintf("crash-%04d", i) }

func head(s []string) []string { return s[:min(len(s), 10)] }

// submit posts one job until the server acknowledges it, retrying with the
// same idempotency key while the server is down or restarting.
func submit(ctx context.Context, a *api, key, ran string) (int64, error) {
	spec := fmt.Sprintf("name: %s\nresources:\n  accelerators: H100:1\nrun: echo %s >> %s\n", key, key, ran)
	body := map[string]string{"spec": spec, "key": key}
	var last error
	for ctx.Err() == nil {
		var out struct {
			Jobs []job `json:"jobs"`
		}
		err := a.do(ctx, http.MethodPost, "/v1/jobs", body, &out)
		if err == nil {
			if len(out.Jobs) != 1 || out.Jobs[0].ID <= 0 {
				return 0, fmt.Errorf("acknowledged with %d jobs: %+v", len(out.Jobs), out.Jobs)
			}
			return out.Jobs[0].ID, nil
		}
		if !retriable(err) {
			return 0, err
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return 0, errors.Join(ctx.Err(), last)
}

func countLines(name string) int {
	data, _ := os.ReadFile(name)
	return strings.Count(string(data), "\n")
}
