package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"gpubroker/internal/server/clock"
	"gpubroker/internal/store"
	"gpubroker/internal/store/postgres"
	"gpubroker/internal/store/sqlite"
)

// BenchmarkAuthenticate is the cost of reading the token from the store
// on every request (so that a revocation holds at once on every replica),
// against hashing alone (the least a cache hit would cost), on SQLite and,
// with DATABASE_URL, on PostgreSQL. Last use is not written here (the
// token was used a moment ago): that write is once a minute.
func BenchmarkAuthenticate(b *testing.B) {
	b.Run("hash-only", func(b *testing.B) {
		req, _ := http.NewRequest("GET", "/v1/jobs", nil)
		req.Header.Set("Authorization", "Bearer gpb_0123456789abcdef0123456789abcdef0123456789a")
		cpu := cpuTime()
		for b.Loop() {
			_, secret, _ := strings.Cut(req.Header.Get("Authorization"), " ")
			HashToken(strings.TrimSpace(secret))
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	})
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchAuth(b, st)
	})
	b.Run("postgres", func(b *testing.B) {
		st := benchPostgres(b)
		defer st.Close()
		benchAuth(b, st)
	})
}

func benchAuth(b *testing.B, st store.Store) {
	reg := prometheus.NewRegistry()
	s := New(Config{Store: st, Clock: clock.Real(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: reg, Gatherer: reg})
	secret, t := NewToken("bench", RoleMember, "bench")
	t.Created, t.LastUsed = time.Now().UTC(), time.Now().UTC()
	if err := st.CreateToken(b.Context(), t); err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	cpu := cpuTime()
	for b.Loop() {
		if _, aerr := s.authenticate(req); aerr != nil {
			b.Fatal(aerr.Message)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is this process's user and system CPU time so far, in
// nanoseconds: other tenants of a shared machine do not inflate it, as
// they do wall time (PostgreSQL's own work is in its server, not here).
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchPostgres opens a PostgreSQL store in a fresh schema of
// DATABASE_URL, dropped afterwards; it skips without DATABASE_URL.
func benchPostgres(b *testing.B) store.Store {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		b.Skip("no DATABASE_URL; . /tmp/pg-ci/env.sh to benchmark PostgreSQL")
	}
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	var r [6]byte
	rand.Read(r[:])
	schema := "bench_" + hex.EncodeToString(r[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil || !strings.Contains(base, "://") {
		b.Skip("DATABASE_URL is not a URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String())
	if err != nil {
		b.Fatal(err)
	}
	return st
}
