package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// AttemptsTable creates the attempts table (store.Attempt), in SQL both
// engines take: times are Unix nanoseconds, slots JSON text. It is part of
// each driver's migrations, so it is shipped schema: never edit it; change
// the table with a new migration.
const AttemptsTable = `CREATE TABLE attempts (
		job_id    BIGINT NOT NULL REFERENCES jobs (id),
		attempt   INTEGER NOT NULL,
		state     TEXT NOT NULL,
		cluster   TEXT,
		pool      TEXT,
		provider  TEXT,
		region    TEXT,
		slots     TEXT,
		admitted  BIGINT,
		started   BIGINT,
		ended     BIGINT,
		exit_code INTEGER,
		outcome   TEXT,
		reason    TEXT,
		PRIMARY KEY (job_id, attempt)
	);`

// attemptCols are the attempts table's columns other than its key
// (job_id, attempt), in attemptRow's order; attemptSets updates each
// from a ? when that is not NULL.
const (
	attemptCols = `state, cluster, pool, provider, region, slots, admitted, started, ended, exit_code,
		outcome, reason`
	attemptSets = `state = COALESCE(?, state), cluster = COALESCE(?, cluster), pool = COALESCE(?, pool),
		provider = COALESCE(?, provider), region = COALESCE(?, region), slots = COALESCE(?, slots),
		admitted = COALESCE(?, admitted), started = COALESCE(?, started), ended = COALESCE(?, ended),
		exit_code = COALESCE(?, exit_code), outcome = COALESCE(?, outcome), reason = COALESCE(?, reason)`
)

// attemptRow is what one write sets of an attempt's row; nil leaves a
// column as it is.
type attemptRow struct {
	state, cluster, pool, provider, region, slots *string
	admitted, started, ended                      *int64
	exitCode                                      *int
	outcome, reason                               *string
}

func attemptArgs(r attemptRow, job int64, attempt int) []any {
	return []any{r.state, r.cluster, r.pool, r.provider, r.region, r.slots, r.admitted, r.started, r.ended,
		r.exitCode, r.outcome, r.reason, job, attempt}
}

// rowOf is the row of a (a whole attempt, for the backfill).
func rowOf(a store.Attempt) (attemptRow, error) {
	r := attemptRow{state: ptr(string(a.State)), exitCode: a.ExitCode}
	for _, f := range []struct {
		to **string
		v  string
	}{{&r.cluster, a.Cluster}, {&r.pool, a.Pool}, {&r.provider, string(a.Provider)}, {&r.region, a.Region},
		{&r.outcome, a.Outcome}, {&r.reason, a.Reason}} {
		if f.v != "" {
			*f.to = ptr(f.v)
		}
	}
	for _, f := range []struct {
		to **int64
		v  int64
	}{{&r.admitted, nanos(a.Admitted)}, {&r.started, nanos(a.Started)}, {&r.ended, nanos(a.Ended)}} {
		if f.v != 0 {
			*f.to = ptr(f.v)
		}
	}
	if len(a.Slots) > 0 {
		b, err := json.Marshal(a.Slots)
		if err != nil {
			return r, err
		}
		r.slots = ptr(string(b))
	}
	return r, nil
}

// recordAttempt writes what move m (at, Unix nanoseconds) tells of j's
// attempts, as store.Attempt documents: the attempt it ends when it
// starts a new one, and the attempt it leaves j at.
func (db *DB) recordAttempt(ctx context.Context, tx *sql.Tx, j *store.Job, m store.Move, at int64) error {
	var cur attemptRow
	if m.NextAttempt {
		prev := attemptRow{ended: &at, outcome: ptr(store.OutcomeRetried), reason: &m.Message, exitCode: m.ExitCode}
		if err := db.writeAttempt(ctx, tx, j.ID, j.Attempt-1, prev, string(m.From)); err != nil {
			return err
		}
		cur.state = ptr(string(store.Pending))
	} else {
		if m.To != store.Pending {
			cur.state = ptr(string(m.To))
		}
		if p := m.Placement; p != nil {
			cur.cluster, cur.pool, cur.provider, cur.region = &p.Cluster, &p.Pool, ptr(string(p.Provider)), &p.Region
		}
		if len(m.Slots) > 0 {
			b, err := json.Marshal(m.Slots)
			if err != nil {
				return fmt.Errorf("%w: slots: %v", store.ErrInvalid, err)
			}
			cur.slots = ptr(string(b))
		}
		cur.exitCode = m.ExitCode
		switch {
		case m.To == store.Admitted:
			cur.admitted = &at
		case m.To == store.Running:
			cur.started = &at
		case m.To.Terminal():
			cur.ended, cur.outcome, cur.reason = &at, ptr(string(m.To)), &m.Message
		}
	}
	return db.writeAttempt(ctx, tx, j.ID, j.Attempt, cur, string(j.State))
}

// writeAttempt updates attempt n of job id, or inserts it (in state, when
// r does not set one) where the job began before the store kept attempts.
func (db *DB) writeAttempt(ctx context.Context, tx *sql.Tx, id int64, n int, r attemptRow, state string) error {
	res, err := tx.StmtContext(ctx, db.updateAttempt).ExecContext(ctx, attemptArgs(r, id, n)...)
	if err != nil {
		return fmt.Errorf("attempt %d of job %d: %w", n, id, err)
	}
	if k, err := res.RowsAffected(); err != nil || k > 0 {
		return err
	}
	if r.state == nil {
		r.state = &state
	}
	if _, err := tx.StmtContext(ctx, db.insertAttempt).ExecContext(ctx, attemptArgs(r, id, n)...); err != nil {
		return fmt.Errorf("attempt %d of job %d: %w", n, id, err)
	}
	return nil
}

// Attempts implements store.Store.
func (db *DB) Attempts(ctx context.Context, id int64) ([]store.Attempt, error) {
	out, err := db.attempts(ctx, id)
	if err == nil && len(out) == 0 {
		var one int
		err = db.queryRow(ctx, db.r, `SELECT 1 FROM jobs WHERE id = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
	}
	if err != nil {
		return nil, db.errorf("attempts of job %d: %w", id, err)
	}
	return out, nil
}

func (db *DB) attempts(ctx context.Context, id int64) ([]store.Attempt, error) {
	rows, err := db.query(ctx, db.r, `SELECT attempt, `+attemptCols+` FROM attempts WHERE job_id = ?
		ORDER BY attempt`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		a := store.Attempt{JobID: id}
		var (
			state                                                   string
			cluster, pool, provider, region, slots, outcome, reason sql.NullString
			admitted, started, ended, exitCode                      sql.NullInt64
		)
		if err := rows.Scan(&a.Attempt, &state, &cluster, &pool, &provider, &region, &slots, &admitted,
			&started, &ended, &exitCode, &outcome, &reason); err != nil {
			return nil, err
		}
		a.State, a.Cluster, a.Pool = store.State(state), cluster.String, pool.String
		a.Provider, a.Region = model.Provider(provider.String), region.String
		a.Outcome, a.Reason = outcome.String, reason.String
		if slots.Valid {
			if err := json.Unmarshal([]byte(slots.String), &a.Slots); err != nil {
				return nil, fmt.Errorf("attempt %d: slots: %w", a.Attempt, err)
			}
		}
		for _, t := range []struct {
			v  sql.NullInt64
			to *time.Time
		}{{admitted, &a.Admitted}, {started, &a.Started}, {ended, &a.Ended}} {
			if t.v.Valid {
				*t.to = fromNanos(t.v.Int64)
			}
		}
		if exitCode.Valid {
			a.ExitCode = ptr(int(exitCode.Int64))
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
