package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers shared by the end-to-end tests: one build of the binary, a
// server process that can be killed and restarted, and a small API client.

// repoRoot is where the tests run the binary from, so that file arguments
// read as a user's at the top of the checkout ("examples/hello.yaml").
const repoRoot = "../.."

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/gpubroker once per test process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gpubroker-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gpubroker")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/gpubroker")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/gpubroker: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// cleanEnv is the test process's environment without GPUBROKER_* and
// XDG_STATE_HOME, so a developer's own server never leaks into a test.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GPUBROKER_") || strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serverProc is one `gpubroker server` process of a test.
type serverProc struct {
	t    *testing.T
	bin  string
	dir  string
	args []string
	n    int // starts so far, for the log file names

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func newServerProc(t *testing.T, bin, dir string, args ...string) *serverProc {
	p := &serverProc{t: t, bin: bin, dir: dir, args: args}
	t.Cleanup(p.stop)
	return p
}

// start starts the server and waits until /healthz answers at url.
func (p *serverProc) start(url string) {
	p.t.Helper()
	if err := p.tryStart(url); err != nil {
		p.t.Fatal(err)
	}
}

// tryStart is start for goroutines other than the test's.
func (p *serverProc) tryStart(url string) error {
	p.mu.Lock()
	p.n++
	n := p.n
	p.mu.Unlock()
	log, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("server-%d.log", n)))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(p.bin, append([]string{"server", "--state-dir", p.dir}, p.args...)...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for !healthy(url) {
		select {
		case <-done:
			return fmt.Errorf("server exited at start (%v); log:\n%s", cmd.ProcessState, readFile(log.Name()))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server did not answer within 30s; log:\n%s", readFile(log.Name()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// kill sends SIGKILL and waits until the process is gone.
func (p *serverProc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop ends the server with SIGTERM (SIGKILL after 20s).
func (p *serverProc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

func healthy(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func readFile(name string) string {
	data, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// job is the part of the API's Job the tests read.
type job struct {
	ID       int64  `json:"id"`
	Key      string `json:"key"`
	State    string `json:"state"`
	Attempt  int    `json:"attempt"`
	Reason   string `json:"reason"`
	Workload struct {
		Name string `json:"name"`
	} `json:"workload"`
}

func terminal(state string) bool {
	return state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED"
}

// api is a minimal client of the documented API (docs/api.md).
type api struct {
	url, token string
	hc         *http.Client
}

// statusError is a non-2xx answer.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(data))}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// retriable reports whether a request may be repeated: the server was
// unreachable or answered 5xx (it may be going down or starting).
func retriable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code >= 500
	}
	return err != nil
}

// allJobs pages through GET /v1/jobs.
func (a *api) allJobs(ctx context.Context) ([]job, error) {
	var all []job
	var after int64
	for {
		var out struct {
			Jobs []job `json:"jobs"`
		}
		if err := a.do(ctx, http.MethodGet, fmt.Sprintf("/v1/jobs?after=%d&limit=1000", after), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Jobs...)
		if len(out.Jobs) == 0 {
			return all, nil
		}
		after = out.Jobs[len(out.Jobs)-1].ID
	}
}
