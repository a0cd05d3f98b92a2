package e2e

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

	"github.com/chromedp/chromedp"

	"gpubroker/internal/backend"
	"gpubroker/internal/backend/local"
	"gpubroker/internal/model"
	"gpubroker/internal/server"
	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlite"
)

// chromiumPath is Debian's Chromium, which the dashboard test drives.
const chromiumPath = "/usr/bin/chromium"

// dashServer is an in-process server on real SQLite and the real local
// backend, listening on a loopback port.
type dashServer struct {
	url, admin string
}

func startDashServer(t *testing.T) *dashServer {
	t.Helper()
	dir := t.TempDir()
	be, err := local.New(filepath.Join(dir, "local"), local.Options{GPUs: 4, Grace: 300 * time.Millisecond, LogPoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return startLocalBroker(t, dir, 100*time.Millisecond, func(c model.Cluster) *local.Backend {
		if c.Backend == model.BackendLocal {
			return be
		}
		return nil
	})
}

// startLocalBroker starts an in-process server on real SQLite in dir, its
// clusters run by the local backends backendOf gives (nil: none), and
// stops it, and whatever still runs on those backends, when t ends.
func startLocalBroker(t *testing.T, dir string, round time.Duration, backendOf func(model.Cluster) *local.Backend) *dashServer {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	used := map[*local.Backend]bool{}
	srv, err := server.New(server.Config{
		Store: st,
		Backends: func(c model.Cluster) (backend.Backend, error) {
			be := backendOf(c)
			if be == nil {
				return nil, fmt.Errorf("no %s backend for cluster %s in this test", c.Backend, c.Name)
			}
			mu.Lock()
			used[be] = true
			mu.Unlock()
			return be, nil
		},
		StateDir:      filepath.Join(dir, "state"),
		Listen:        "127.0.0.1:0",
		RoundInterval: round,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		LocalGPUs:     4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
		// Stop whatever still runs on the backends before the directory goes.
		mu.Lock()
		defer mu.Unlock()
		for be := range used {
			stopAll(ctx, be)
		}
		st.Close()
	})
	b, err := os.ReadFile(filepath.Join(dir, "state", server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return &dashServer{url: "http://" + srv.Addr(), admin: strings.TrimSpace(string(b))}
}

// stopAll cancels every attempt still pending or running on be and waits
// (10 s at most) until none is.
func stopAll(ctx context.Context, be *local.Backend) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		sts, err := be.Observe(ctx)
		if err != nil {
			return
		}
		busy := false
		for _, s := range sts {
			if s.Phase == backend.PhasePending || s.Phase == backend.PhaseRunning {
				busy = true
				be.Cancel(ctx, s.Name)
			}
		}
		if !busy {
			return
		}
	}
}

func (d *dashServer) api(t *testing.T, method, path, token string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}

func (d *dashServer) token(t *testing.T, team, role string) string {
	var out struct {
		Token string `json:"token"`
	}
	d.api(t, "POST", "/v1/tokens", d.admin, map[string]string{"team": team, "role": role, "name": "dashboard e2e"}, &out)
	return out.Token
}

func (d *dashServer) submit(t *testing.T, token, name, run string) int64 {
	var out struct {
		Jobs []store.Job `json:"jobs"`
	}
	src := fmt.Sprintf("name: %s\nresources:\n  accelerators: H100:1\nrun: |\n  %s\n", name, run)
	d.api(t, "POST", "/v1/jobs", token, map[string]string{"spec": src}, &out)
	return out.Jobs[0].ID
}

func (d *dashServer) state(t *testing.T, id int64) store.State {
	var j store.Job
	d.api(t, "GET", fmt.Sprintf("/v1/jobs/%d", id), d.admin, nil, &j)
	return j.State
}

// artifactsDir is where screenshots go: $GPUBROKER_ARTIFACTS/dashboard
// when set (CI keeps them), else the test's temporary directory.
func artifactsDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "screenshots")
	if a := os.Getenv("GPUBROKER_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "dashboard")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDashboardInChromium drives the dashboard in headless Chromium: log
// in with a token, watch a job submitted through the API go through the
// queue to SUCCEEDED, read its logs, cancel a sleeping job from its page,
// and check that team A never sees team B's work.
func TestDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := "no " + chromiumPath + "; apt-get install chromium to run the dashboard's browser test"
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatal(msg + " (GPUBROKER_REQUIRE_ENGINES=1: required)")
		}
		t.Skip(msg)
	}
	d := startDashServer(t)
	tokA, tokB := d.token(t, "team-a", "member"), d.token(t, "team-b", "member")
	shots := artifactsDir(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	// The first Do starts the browser, which lives as long as ctx: no
	// timeout on it; each step below gets its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 20*time.Second) }
	run := func(what string, acts ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := step()
		defer cancel()
		if err := chromedp.Do(sctx, acts...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	readText := func(sel string) (string, error) {
		sctx, cancel := step()
		defer cancel()
		return chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	}
	text := func(sel string) string {
		t.Helper()
		s, err := readText(sel)
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		sctx, cancel := step()
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	body := func() string { return text("body") }
	// waitFor waits until the element's text contains want: the page's
	// refresh script brings new content without a reload. A read that
	// fails is tried again until then: a form's POST and redirect (cancel)
	// replace the page, and a read during that finds no page to read
	// ("Cannot find context with specified id").
	waitFor := func(sel, want string, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); ; time.Sleep(250 * time.Millisecond) {
			got, err := readText(sel)
			if err == nil && strings.Contains(got, want) {
				return
			}
			if time.Now().After(deadline) {
				if err != nil {
					t.Fatalf("%s never showed %q; reading it: %v", sel, want, err)
				}
				t.Fatalf("%s never showed %q; it shows %q", sel, want, got)
			}
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	// Log in as a member of team A.
	run("open the login page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(d.url+"/"), chromedp.WaitVisible(css("#token")))
	shot("01-login")
	run("log in",
		chromedp.SendKeys(css("#token"), tokA),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#who")))
	waitFor("#who", "team team-a", time.Second)

	// Team B's work exists, but team A's pages never show it.
	idB := d.submit(t, tokB, "bravo-hidden-job", "sleep 30")

	// A job submitted through the API appears in the queue, then succeeds.
	idA := d.submit(t, tokA, "alpha-hello", "echo hello from the dashboard test; sleep 3; echo done")
	run("open the queue", chromedp.Navigate(d.url+"/queue"), chromedp.WaitVisible(css("main h1")))
	waitFor("main", "alpha-hello", 10*time.Second)
	shot("02-queue")
	if strings.Contains(body(), "bravo-hidden-job") {
		t.Errorf("team A's queue shows team B's job")
	}
	run("open the job", chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", d.url, idA)), chromedp.WaitVisible(css("#job-state")))
	waitFor("#logs", "hello from the dashboard test", 15*time.Second)
	waitFor("#job-state", "SUCCEEDED", 20*time.Second)
	waitFor("#logs", "done", 5*time.Second)
	waitFor("#attempts", "SUCCEEDED", time.Second)
	shot("03-job-succeeded")

	// Cancel a sleeping job from its page.
	idS := d.submit(t, tokA, "alpha-sleeper", "sleep 300")
	run("open the sleeper", chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", d.url, idS)), chromedp.WaitVisible(css("#cancel")))
	waitFor("#job-state", "RUNNING", 15*time.Second)
	run("cancel", chromedp.Click(css("#cancel")), chromedp.WaitVisible(css("#job-state")))
	waitFor("#job-state", "CANCELLED", 10*time.Second)
	if st := d.state(t, idS); st != store.Cancelled {
		t.Errorf("the API says the cancelled job is %s", st)
	}
	sctx, cancel := step()
	buttons, err := chromedp.Run(sctx, chromedp.Evaluate[int](`document.querySelectorAll("#cancel").length`))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if buttons != 0 {
		t.Errorf("a cancelled job still offers the cancel button")
	}
	shot("04-job-cancelled")

	// Team A sees nothing of team B's job anywhere, and cannot open it.
	for _, p := range []string{"/", "/queue", "/fleet", "/contracts", "/teams"} {
		run("open "+p, chromedp.Navigate(d.url+p), chromedp.WaitVisible(css("main h1")))
		if b := body(); strings.Contains(b, "bravo-hidden-job") || strings.Contains(b, "team-b") {
			t.Errorf("team A's %s shows team B's work", p)
		}
		if p == "/" {
			shot("05-overview")
		}
	}
	run("open B's job", chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", d.url, idB)), chromedp.WaitVisible(css("#error")))
	if b := body(); strings.Contains(b, "bravo-hidden-job") || !strings.Contains(b, "Not Found") {
		t.Errorf("team A opening B's job: %q", b)
	}

	// The overview at phone width, then log out.
	run("phone width", chromedp.EmulateViewport(390, 844), chromedp.Navigate(d.url+"/"), chromedp.WaitVisible(css("main h1")))
	shot("06-overview-phone")
	run("log out", chromedp.EmulateViewport(1280, 800), chromedp.Click(css("#logout")), chromedp.WaitVisible(css("#token")))
	t.Logf("screenshots in %s", shots)
}
