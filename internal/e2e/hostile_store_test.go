package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The store under a hostile or broken machine: a database file emptied or
// swapped under a state directory, and a database that stops taking
// writes while the server runs.

// runServerOnce runs `gpubroker server` and returns its output, failing
// the test when it is still running after 20 s (it should have refused).
func runServerOnce(t *testing.T, bin, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"server", "--state-dir", dir,
		"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, args...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the server started (ran 20 s) where it should have refused; output:\n%s", out)
	}
	return string(out), err
}

// A zero-byte (or deleted) database under a state directory that held
// data, or another broker's database, is refused at start with a message
// saying how to proceed; the admin token is not rewritten; once the
// operator removes store.id on purpose, the server starts afresh.
func TestHostileStoreReplaced(t *testing.T) {
	bin := binary(t)
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		u := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		p := newServerProc(t, bin, d, "--listen", strings.TrimPrefix(u, "http://"))
		p.start(u)
		tok := strings.TrimSpace(readFile(filepath.Join(d, "admin.token")))
		a := &api{url: u, token: tok, hc: &http.Client{Timeout: 10 * time.Second}}
		if err := a.do(t.Context(), "POST", "/v1/jobs", map[string]string{"spec": "resources:\n  accelerators: H100:1\nrun: echo hi\n"}, nil); err != nil {
			t.Fatal(err)
		}
		p.stop()
	}
	db := filepath.Join(dir, "gpubroker.db")
	token := readFile(filepath.Join(dir, "admin.token"))

	// Another broker's database copied over this one.
	data, err := os.ReadFile(filepath.Join(other, "gpubroker.db"))
	if err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runServerOnce(t, bin, dir)
	if err == nil || !strings.Contains(out, "store.id names store") || !strings.Contains(out, "but this store is store-") {
		t.Errorf("start on another broker's database: %v; output:\n%s", err, out)
	}

	// A zero-byte file, as a failed copy or a full disk leaves.
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runServerOnce(t, bin, dir)
	if err == nil || !strings.Contains(out, "new or empty") || !strings.Contains(out, "remove "+filepath.Join(dir, "store.id")) {
		t.Errorf("start on a zero-byte database: %v; output:\n%s", err, out)
	}
	if got := readFile(filepath.Join(dir, "admin.token")); got != token {
		t.Errorf("the refused start rewrote the admin token")
	}
	// Refused twice in a row: the refusal wrote no identity of its own.
	if out, err = runServerOnce(t, bin, dir); err == nil || !strings.Contains(out, "new or empty") {
		t.Errorf("second start on the zero-byte database: %v; output:\n%s", err, out)
	}

	// The right database back: it starts, with its job.
	if err := os.WriteFile(db, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	p := newServerProc(t, bin, dir, "--listen", strings.TrimPrefix(u, "http://"))
	p.start(u)
	a := &api{url: u, token: strings.TrimSpace(token), hc: &http.Client{Timeout: 10 * time.Second}}
	jobs, err := a.allJobs(t.Context())
	if err != nil || len(jobs) != 1 {
		t.Errorf("jobs after putting the database back: %v, %v", jobs, err)
	}
	p.stop()

	// Starting afresh on purpose: remove store.id.
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(db + "-wal")
	os.Remove(db + "-shm")
	if err := os.Remove(filepath.Join(dir, "store.id")); err != nil {
		t.Fatal(err)
	}
	p.start(u)
}

// A PostgreSQL database that stops taking writes (a failover to a
// read-only replica, a role made read-only) makes /healthz answer 503
// with the reason, and 200 again once writes are back; a server started
// on it refuses to start.
func TestHostileReadOnlyPostgres(t *testing.T) {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		const msg = "PostgreSQL not running; start it with scripts/engines/pg-up.sh and source $PG_CI_DIR/env.sh"
		if os.Getenv("GPUBROKER_REQUIRE_ENGINES") == "1" {
			t.Fatal(msg + " (GPUBROKER_REQUIRE_ENGINES=1: required)")
		}
		t.Skip(msg)
	}
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var b [6]byte
	rand.Read(b[:])
	name := "gb_ro_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	readOnly := func(on bool) {
		t.Helper()
		set := "SET default_transaction_read_only = on"
		if !on {
			set = "RESET default_transaction_read_only"
		}
		if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" "+set); err != nil {
			t.Fatal(err)
		}
		// Sessions read the setting when they start: end the server's.
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
		admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	storeURL := u.String()

	bin := binary(t)
	dir := t.TempDir()
	srvURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	p := newServerProc(t, bin, dir, "--store", storeURL, "--listen", strings.TrimPrefix(srvURL, "http://"))
	p.start(srvURL)

	health := func() (int, string) {
		resp, err := http.Get(srvURL + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	waitHealth := func(want int) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := health()
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/healthz answered %d %q for 15 s; want %d", code, body, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitHealth(http.StatusOK)
	readOnly(true)
	if body := waitHealth(http.StatusServiceUnavailable); !strings.Contains(body, "store not writable") || !strings.Contains(body, "read-only") {
		t.Errorf("/healthz on a read-only store: %q", body)
	}
	readOnly(false)
	waitHealth(http.StatusOK)
	p.stop()

	// Started on a read-only database: refused, saying why.
	readOnly(true)
	out, err := runServerOnce(t, bin, dir, "--store", storeURL)
	if err == nil || !strings.Contains(out, "read-only") {
		t.Errorf("start on a read-only database: %v; output:\n%s", err, out)
	}
}
