package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"gpubroker/internal/store/storetest"
)

// TestUpgradeBackfillsAttempts: a database written before the attempts
// table (schema 4), holding a job that failed over and its events, opens
// with the attempts its events told, and its usage records still listed.
func TestUpgradeBackfillsAttempts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for v, m := range migrations[:4] {
		if _, err := old.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", v+1, err)
		}
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations (version, applied) VALUES (1, 0), (2, 0), (3, 0), (4, 0)`,
		`INSERT INTO jobs (id, key, team, username, workload, spec, state, attempt, reason, restarts, created, updated, seq)
			VALUES (1, NULL, 'ml', 'alice', '{"name":"old"}', '', 'DISPATCHED', 2, '', 0, 1, 1, 7)`,
		`INSERT INTO usage (job_id, attempt, team, provider, cluster, pool, price_class, contract, gpus, start, end, cost_usd)
			VALUES (1, 1, 'ml', 'aws', 'aws-slurm', 'h100', 'committed', '', 4, 10, 20, 1.5)`,
		`INSERT INTO tokens (id, hash, team, role, name, created) VALUES ('tok-old', 'h-old', 'ml', 'member', 'ci', 1)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, e := range storetest.LegacyEvents(1) {
		if _, err := old.Exec(`INSERT INTO events (job_id, seq, at, actor, from_state, to_state, attempt, message)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.JobID, e.Seq, e.At.UnixNano(), e.Actor, string(e.From),
			string(e.To), e.Attempt, e.Message); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.AttemptsAfterUpgrade(t, s, 1)
	storetest.TokensAfterUpgrade(t, s)
	us, err := s.ListUsage(t.Context(), fromNanosForTest(0), fromNanosForTest(100))
	if err != nil || len(us) != 1 || us[0].CostUSD != 1.5 {
		t.Errorf("usage after the upgrade: %+v, %v; want the one record", us, err)
	}
}

func fromNanosForTest(ns int64) time.Time { return time.Unix(0, ns).UTC() }
