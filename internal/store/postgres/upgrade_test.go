package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"gpubroker/internal/store/storetest"
)

// TestUpgradeBackfillsAttempts: a schema written before the attempts
// table (version 3), holding a job that failed over and its events, opens
// with the attempts its events told.
func TestUpgradeBackfillsAttempts(t *testing.T) {
	t.Parallel()
	u := freshSchema(t)
	ctx := t.Context()
	old, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	for _, q := range append(migrations[:3:3],
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())`,
		`INSERT INTO schema_migrations (version) VALUES (1), (2), (3)`,
		`UPDATE job_ids SET last = 1`,
		`INSERT INTO jobs (id, key, team, username, workload, spec, state, attempt, reason, restarts, created, updated, seq)
			VALUES (1, NULL, 'ml', 'alice', '{"name":"old"}', '', 'DISPATCHED', 2, '', 0, 1, 1, 7)`,
		`INSERT INTO tokens (id, hash, team, role, name, created) VALUES ('tok-old', 'h-old', 'ml', 'member', 'ci', 1)`,
	) {
		if _, err := old.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, e := range storetest.LegacyEvents(1) {
		if _, err := old.Exec(ctx, `INSERT INTO events (job_id, seq, at, actor, from_state, to_state, attempt, message)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.JobID, e.Seq, e.At.UnixNano(), e.Actor, string(e.From),
			string(e.To), e.Attempt, e.Message); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.AttemptsAfterUpgrade(t, s, 1)
	storetest.TokensAfterUpgrade(t, s)
}
