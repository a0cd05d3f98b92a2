package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 21's log attacks against a real server process on SQLite and the
// local backend: a 200 MB log viewed at once by several dashboards and API
// tails, a job writing past the log cap, and a state disk that fills up.

// logServer is a server process with its admin client.
type logServer struct {
	proc *serverProc
	api  *api
	url  string
}

// startLogServer starts a server whose state is in stateDir (its own log
// files go to a directory of the test's) with args added.
func startLogServer(t *testing.T, stateDir string, args ...string) *logServer {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	p := newServerProc(t, binary(t), t.TempDir(), append([]string{"--state-dir", stateDir,
		"--listen", strings.TrimPrefix(url, "http://"), "--round", "100ms", "--local-gpus", "H100:8"}, args...)...)
	p.start(url)
	token, err := os.ReadFile(filepath.Join(stateDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return &logServer{proc: p, url: url,
		api: &api{url: url, token: strings.TrimSpace(string(token)), hc: &http.Client{Timeout: 60 * time.Second}}}
}

// peakRSS is the server's peak resident set (VmHWM) in bytes.
func (s *logServer) peakRSS(t *testing.T) int64 {
	t.Helper()
	s.proc.mu.Lock()
	pid := s.proc.cmd.Process.Pid
	s.proc.mu.Unlock()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM: %q", v)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// submitRun submits a one-GPU job running run and returns its ID.
func (s *logServer) submitRun(ctx context.Context, key, run string) (int64, error) {
	spec := "name: " + key + "\nresources:\n  accelerators: H100:1\nrun: |\n  " + run + "\n"
	var out struct {
		Jobs []job `json:"jobs"`
	}
	if err := s.api.do(ctx, http.MethodPost, "/v1/jobs", map[string]string{"spec": spec, "key": key}, &out); err != nil {
		return 0, err
	}
	if len(out.Jobs) != 1 {
		return 0, fmt.Errorf("submit %s: %d jobs", key, len(out.Jobs))
	}
	return out.Jobs[0].ID, nil
}

// waitState waits until job id is terminal and returns its state.
func (s *logServer) waitState(t *testing.T, id int64, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var j job
		err := s.api.do(context.Background(), http.MethodGet, fmt.Sprintf("/v1/jobs/%d", id), nil, &j)
		if err == nil && terminal(j.State) {
			return j.State
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d not ended within %v (%+v, %v)", id, within, j, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get fetches path with the admin token as a bearer (api) or as the
// dashboard's cookie, and returns the body.
func (s *logServer) get(path string, dashboard bool) (string, error) {
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		return "", err
	}
	if dashboard {
		req.AddCookie(&http.Cookie{Name: "gpubroker_token", Value: s.api.token})
	} else {
		req.Header.Set("Authorization", "Bearer "+s.api.token)
	}
	resp, err := s.api.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %.300s", path, resp.StatusCode, body)
	}
	return string(body), err
}

// TestHostileLogsLargeLogBoundedMemory: a job writes 200 MB of output;
// then four dashboards show its job page at once (and again, as their
// refresh does), four API clients ask its tail, and one streams it whole:
// the server's peak RSS stays under 200 MB, as every tail is read from the
// end of the log.
func TestHostileLogsLargeLogBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 200 MB log; skipped with -short")
	}
	t.Parallel()
	s := startLogServer(t, t.TempDir())
	const size = 200_000_000
	ctx := context.Background()
	id, err := s.submitRun(ctx, "big-log", fmt.Sprintf(`yes "a line of log output, the same again and again, to fill two hundred megabytes" | head -c %d; echo; echo last-line-of-the-log`, size))
	if err != nil {
		t.Fatal(err)
	}
	if st := s.waitState(t, id, 2*time.Minute); st != "SUCCEEDED" {
		t.Fatalf("the 200 MB job ended %s", st)
	}
	page := fmt.Sprintf("/jobs/%d", id)
	tail := fmt.Sprintf("/v1/jobs/%d/logs?tail=200", id)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 4 {
		wg.Go(func() {
			for range 3 {
				body, err := s.get(page, true)
				if err == nil && !strings.Contains(body, "last-line-of-the-log") {
					err = fmt.Errorf("the job page does not show the log's last line")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			body, err := s.get(tail, false)
			if err == nil && (!strings.HasSuffix(body, "last-line-of-the-log\n") || strings.Count(body, "\n") != 200) {
				err = fmt.Errorf("tail=200: %d lines, ending %q", strings.Count(body, "\n"), body[max(0, len(body)-60):])
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Go(func() {
		// The whole log, streamed: bounded by the copy buffers.
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/jobs/%d/logs", s.url, id), nil)
		req.Header.Set("Authorization", "Bearer "+s.api.token)
		resp, err := s.api.hc.Do(req)
		if err != nil {
			errs <- err
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n < size {
			err = fmt.Errorf("the whole log streamed %d bytes, want over %d", n, size)
		}
		if err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	peak := s.peakRSS(t)
	t.Logf("server peak RSS (VmHWM) after a 200 MB log viewed 4 times at once on the dashboard (x3), 4 API tails and 1 full stream: %.1f MB", float64(peak)/1e6)
	if peak >= 200<<20 {
		t.Errorf("server peak RSS %.1f MB, want under 200 MB", float64(peak)/1e6)
	}
}

// TestHostileLogsCap: with --max-log-size 1MiB a job writing 5 MB keeps
// its first MiB and a truncation note, runs on to succeed, and the tail
// shows the note.
func TestHostileLogsCap(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	s := startLogServer(t, state, "--max-log-size", "1MiB")
	ctx := context.Background()
	id, err := s.submitRun(ctx, "capped", `for ((i = 1; i <= 50000; i++)); do printf 'line %099d\n' "$i"; done; echo after-the-cap; exit 0`)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.waitState(t, id, time.Minute); st != "SUCCEEDED" {
		t.Fatalf("the job writing past its cap ended %s, want SUCCEEDED (it must run on)", st)
	}
	logs, err := s.get(fmt.Sprintf("/v1/jobs/%d/logs", id), false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(logs, fmt.Sprintf("line %099d\n", 1)) {
		t.Errorf("the capped log does not start with the job's first line: %.80q", logs)
	}
	note := strings.Index(logs, "[gpubroker] output truncated:")
	switch {
	case note < 0:
		t.Errorf("no truncation note; the log is %d bytes", len(logs))
	case note > 1<<20+1 || len(logs) > 1<<20+400:
		t.Errorf("log of %d bytes with the note at %d; want the first MiB, then the note", len(logs), note)
	}
	if strings.Contains(logs, "after-the-cap") {
		t.Errorf("output past the cap was stored")
	}
	tail, err := s.get(fmt.Sprintf("/v1/jobs/%d/logs?tail=1", id), false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tail, "[gpubroker] output truncated:") || !strings.Contains(tail, "1 MiB") {
		t.Errorf("tail=1 = %q, want the truncation note naming the 1 MiB cap", tail)
	}
}

// TestHostileLogsDiskFull: the state directory is a 64 MB tmpfs. Jobs are
// submitted; then the disk is filled. Submissions get 503 saying the disk
// is full (the server stays up); once the filler is removed, submissions
// are accepted again without a restart, and every job acknowledged before,
// during or after is there and runs to SUCCEEDED.
func TestHostileLogsDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatal("the disk-full test mounts a tmpfs and needs root; GPUBROKER_REQUIRE_ENGINES=1")
		}
		t.Skip("the disk-full test mounts a tmpfs and needs root")
	}
	t.Parallel()
	state := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", state).CombinedOutput(); err != nil {
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	s := startLogServer(t, state)
	// Registered after the server's stop (cleanups run last first): the
	// server is gone before the unmount.
	t.Cleanup(func() {
		s.proc.stop()
		if out, err := exec.Command("umount", "-l", state).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", state, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var acked []int64
	for i := range 20 {
		id, err := s.submitRun(ctx, fmt.Sprintf("before-%d", i), "sleep 1; echo done")
		if err != nil {
			t.Fatalf("submit before the disk fills: %v", err)
		}
		acked = append(acked, id)
	}

	// Fill the disk: a file as large as it will grow.
	filler := filepath.Join(state, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 1<<20)
	for {
		if _, err := f.Write(block); err != nil {
			break
		}
	}
	f.Close()

	// Submissions (with 64 KB specs, so the database must grow) until the
	// store refuses one: those acknowledged meanwhile must be kept too.
	pad := "#" + strings.Repeat("p", 64<<10) + "\n"
	var refused *statusError
	for i := 0; refused == nil && i < 2000; i++ {
		key := fmt.Sprintf("during-%d", i)
		spec := pad + "name: " + key + "\nresources:\n  accelerators: H100:1\nrun: echo done\n"
		var out struct {
			Jobs []job `json:"jobs"`
		}
		err := s.api.do(ctx, http.MethodPost, "/v1/jobs", map[string]string{"spec": spec, "key": key}, &out)
		switch {
		case err == nil:
			acked = append(acked, out.Jobs[0].ID)
		case errors.As(err, &refused):
		default:
			t.Fatalf("submit while the disk is full: %v", err)
		}
	}
	if refused == nil {
		t.Fatal("2,000 submissions of 64 KB on a full 64 MB disk were all accepted")
	}
	if refused.code != http.StatusServiceUnavailable || !strings.Contains(refused.body, "disk is full") || !strings.Contains(refused.body, "free space") {
		t.Errorf("submit on a full disk: %d %s; want 503 saying the disk is full and to free space", refused.code, refused.body)
	}
	if !healthy(s.url) {
		t.Logf("/healthz fails while the disk is full")
	}

	// Space comes back: submissions are accepted again, no restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		id, err := s.submitRun(ctx, "after", "echo done")
		if err == nil {
			acked = append(acked, id)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("submit 30s after space was freed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d submissions acknowledged; the first refusal: %s", len(acked), refused.body)
	for _, id := range acked {
		if st := s.waitState(t, id, 2*time.Minute); st != "SUCCEEDED" {
			t.Errorf("job %d (acknowledged) ended %s, want SUCCEEDED", id, st)
		}
	}
}
