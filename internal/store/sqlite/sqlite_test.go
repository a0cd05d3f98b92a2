package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/store"
	"gpubroker/internal/store/storetest"
)

// dirs gives each test one directory, so a second open in the same test
// reopens the same database.
var dirs sync.Map // *testing.T -> string

func openForTest(t *testing.T) store.Store {
	t.Helper()
	d, ok := dirs.Load(t)
	if !ok {
		d, _ = dirs.LoadOrStore(t, t.TempDir())
		t.Cleanup(func() { dirs.Delete(t) })
	}
	s, err := Open(filepath.Join(d.(string), "broker.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openForTest)
}

func TestMigrationsRecorded(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "m.db")
	for range 2 { // the second Open finds everything applied
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var n, v int
		if err := s.r.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != len(migrations) || v != len(migrations) {
			t.Errorf("schema_migrations: %d rows, max %d; want %d", n, v, len(migrations))
		}
		var mode string
		if err := s.r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
		s.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`INSERT INTO schema_migrations (version, applied) VALUES (?, 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer binary succeeded")
	}
}

// TestTwoHandles: two Stores on one file (as two processes would be) both
// write without SQLITE_BUSY errors and see each other's jobs.
func TestTwoHandles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b} {
		wg.Go(func() {
			for range 100 {
				if _, err := s.CreateJob(t.Context(), job(), time.Now()); err != nil {
					t.Errorf("CreateJob: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := a.ListJobs(t.Context(), store.Filter{})
	if err != nil || len(got) != 200 {
		t.Fatalf("ListJobs: %d jobs, %v; want 200", len(got), err)
	}
	for i, j := range got {
		if j.ID != int64(i+1) {
			t.Fatalf("job %d has ID %d", i, j.ID)
		}
	}
}

func job() *store.Job {
	return &store.Job{Team: "ml", User: "bench", Workload: storetest.Workload("bench"), Spec: "run: true\n"}
}

// syncModes are the synchronous settings the write benchmarks compare:
// FULL (what Open uses) and NORMAL (what it used before issue 21).
var syncModes = []string{"FULL", "NORMAL"}

func BenchmarkCreateJob(b *testing.B) {
	for _, mode := range syncModes {
		b.Run("sync="+mode, func(b *testing.B) {
			s, err := open(filepath.Join(b.TempDir(), "bench.db"), mode)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			j := job()
			at := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.CreateJob(ctx, j, at); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// BenchmarkCreateJobParallel is what the HTTP server does: many handlers
// creating at once, serialized on the one writer connection.
func BenchmarkCreateJobParallel(b *testing.B) {
	for _, mode := range syncModes {
		b.Run("sync="+mode, func(b *testing.B) {
			s, err := open(filepath.Join(b.TempDir(), "bench.db"), mode)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			at := time.Now()
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				j := job()
				for pb.Next() {
					if _, err := s.CreateJob(ctx, j, at); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// BenchmarkListPending100k lists the 10,000 PENDING jobs among 100,000
// (the rest SUCCEEDED), as a reconcile round reads them.
func BenchmarkListPending100k(b *testing.B) {
	const total, pending = 100_000, 10_000
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fill(b, s, total, pending)
	ctx := context.Background()
	f := store.Filter{States: []store.State{store.Pending}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		js, err := s.ListJobs(ctx, f)
		if err != nil {
			b.Fatal(err)
		}
		if len(js) != pending {
			b.Fatalf("listed %d, want %d", len(js), pending)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/pending, "ns/job")
}

// fill writes total jobs straight into the tables in one transaction (the
// benchmark measures listing, not creating); every total/pending-th job is
// PENDING, the others SUCCEEDED.
func fill(b *testing.B, s *Store, total, pending int) {
	b.Helper()
	wl := job()
	created, err := s.CreateJob(context.Background(), wl, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	row, err := s.GetJob(context.Background(), created.ID)
	if err != nil {
		b.Fatal(err)
	}
	var doc string
	if err := s.r.QueryRow(`SELECT workload FROM jobs WHERE id = 1`).Scan(&doc); err != nil {
		b.Fatal(err)
	}
	tx, err := s.w.Begin()
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	ins, err := tx.Prepare(`INSERT INTO jobs (id, team, username, workload, spec, state, attempt, reason,
		restarts, created, updated, seq) VALUES (?, ?, 'u', ?, '', ?, 1, '', 0, ?, ?, 1)`)
	if err != nil {
		b.Fatal(err)
	}
	ns := row.Created.UnixNano()
	every := total / pending
	if _, err := tx.Exec(`UPDATE jobs SET state = 'SUCCEEDED' WHERE id = 1`); err != nil {
		b.Fatal(err)
	}
	for i := 2; i <= total+1; i++ {
		st := store.Succeeded
		if i%every == 0 {
			st = store.Pending
		}
		if _, err := ins.Exec(i, fmt.Sprintf("team-%d", i%7), doc, string(st), ns, ns); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// TestUpgradeKeepsJobs: a database written before pipelines (schema 2)
// opens with its jobs intact, each waiting for no job.
func TestUpgradeKeepsJobs(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for v, m := range migrations[:2] {
		if _, err := old.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", v+1, err)
		}
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations (version, applied) VALUES (1, 0), (2, 0)`,
		`INSERT INTO jobs (key, team, username, workload, spec, state, attempt, reason, restarts, created, updated, seq)
			VALUES (NULL, 'ml', 'alice', '{"name":"old"}', '', 'PENDING', 1, '', 0, 1, 1, 1)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.GetJob(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if j.After != 0 || j.Workload.Name != "old" {
		t.Errorf("old job after the upgrade: after %d, workload %+v", j.After, j.Workload)
	}
	storetest.ChangesAfterUpgrade(t, s, 1)
}

// BenchmarkMoveJob is 500 jobs' lives as the reconciler records them:
// four moves each (admitted, dispatched, running, succeeded), each move its
// own transaction (one) or each step of all 500 one MoveJobs batch (batch).
func BenchmarkMoveJob(b *testing.B) {
	const jobs = 500
	pl := &store.Placement{Cluster: "kwok", Pool: "kwok", GPU: "H100", GPUsPerNode: 8, Nodes: []int{1}}
	steps := []store.Move{
		{From: store.Pending, To: store.Admitted, Placement: pl, Reason: "admitted"},
		{From: store.Admitted, To: store.Dispatched, Message: "dispatched"},
		{From: store.Dispatched, To: store.Running, Message: "started"},
		{From: store.Running, To: store.Succeeded, Reason: "Succeeded", Message: "Succeeded"},
	}
	for _, batch := range []bool{false, true} {
		name := "one"
		if batch {
			name = "batch"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			at := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				ids := make([]int64, jobs)
				for i := range ids {
					j, err := s.CreateJob(ctx, job(), at)
					if err != nil {
						b.Fatal(err)
					}
					ids[i] = j.ID
				}
				b.StartTimer()
				for _, m := range steps {
					m.Attempt, m.At, m.Actor = 1, at, "bench"
					moves := make([]store.JobMove, len(ids))
					for i, id := range ids {
						moves[i] = store.JobMove{ID: id, Move: m}
					}
					if batch {
						_, errs, err := s.MoveJobs(ctx, moves)
						if err == nil {
							err = errors.Join(errs...)
						}
						if err != nil {
							b.Fatal(err)
						}
						continue
					}
					for _, jm := range moves {
						if _, err := s.MoveJob(ctx, jm.ID, jm.Move); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*jobs*len(steps)), "ns/move")
		})
	}
}
