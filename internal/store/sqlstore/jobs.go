package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gpubroker/internal/store"
)

// JobCols are the columns ScanJob reads, in its order.
const JobCols = `id, key, team, username, workload, spec, state, attempt, reason,
	placement, restarts, exit_code, created, updated, started, ended, after_id`

// leanCols are JobCols without the workload and the spec.
const leanCols = `id, key, team, username, state, attempt, reason,
	placement, restarts, exit_code, created, updated, started, ended, after_id`

// DB is the shared part of a SQL store.Store. A driver embeds it and adds
// CreateJob, Cursor, Changes and Close.
type DB struct {
	// w takes every write; r every read outside a write (the same pool
	// where the database needs no split).
	w, r *sql.DB
	d    Dialect

	getJob, moveJob, insertEvent, addUsage *sql.Stmt
	updateAttempt, insertAttempt           *sql.Stmt
	workloads                              store.WorkloadCache
}

// New prepares the statements DB runs most on w and r, whose schema must
// be up to date (Migrate). Close releases them; w and r stay the
// caller's.
func New(d Dialect, w, r *sql.DB) (*DB, error) {
	db := &DB{w: w, r: r, d: d}
	for _, p := range []struct {
		st  **sql.Stmt
		on  *sql.DB
		sql string
	}{
		{&db.getJob, r, `SELECT ` + JobCols + ` FROM jobs WHERE id = ?`},
		{&db.moveJob, w, moveSQL(d)},
		{&db.insertEvent, w, `INSERT INTO events (job_id, seq, at, actor, from_state, to_state, attempt, message)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&db.addUsage, w, `INSERT INTO usage (job_id, attempt, team, provider, cluster, pool, price_class,
			contract, gpus, start_at, end_at, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&db.updateAttempt, w, `UPDATE attempts SET ` + attemptSets + ` WHERE job_id = ? AND attempt = ?`},
		{&db.insertAttempt, w, `INSERT INTO attempts (` + attemptCols + `, job_id, attempt)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
	} {
		st, err := p.on.Prepare(d.Bind(p.sql))
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("prepare %.40q: %w", p.sql, err)
		}
		*p.st = st
	}
	return db, nil
}

// Close releases the prepared statements (not w and r). It is safe to
// call more than once.
func (db *DB) Close() error {
	for _, st := range []**sql.Stmt{&db.getJob, &db.moveJob, &db.insertEvent, &db.addUsage,
		&db.updateAttempt, &db.insertAttempt} {
		if *st != nil {
			(*st).Close()
			*st = nil
		}
	}
	return nil
}

// errorf prefixes an error with the driver's name.
func (db *DB) errorf(format string, args ...any) error {
	return fmt.Errorf(db.d.Name+": "+format, args...)
}

// query and queryRow bind query for the dialect and run it on q.
func (db *DB) query(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	return q.QueryContext(ctx, db.d.Bind(query), args...)
}

func (db *DB) queryRow(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	return q.QueryRowContext(ctx, db.d.Bind(query), args...)
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// CheckNew reports a job CreateJob must refuse (ErrInvalid) and returns
// its workload as JSON.
func CheckNew(j *store.Job) ([]byte, error) {
	if j == nil || j.Team == "" || j.Workload == nil {
		return nil, fmt.Errorf("%w: team and workload are required", store.ErrInvalid)
	}
	if j.After < 0 {
		return nil, fmt.Errorf("%w: after %d is not a job ID", store.ErrInvalid, j.After)
	}
	wl, err := json.Marshal(j.Workload)
	if err != nil {
		return nil, fmt.Errorf("%w: workload: %v", store.ErrInvalid, err)
	}
	return wl, nil
}

// CheckAfter reports, in a creating transaction, an After that names no
// job (ErrInvalid).
func (db *DB) CheckAfter(ctx context.Context, tx *sql.Tx, after int64) error {
	if after == 0 {
		return nil
	}
	var one int
	err := db.queryRow(ctx, tx, `SELECT 1 FROM jobs WHERE id = ?`, after).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: after: no job %d to wait for", store.ErrInvalid, after)
	}
	return err
}

// Created is the job CreateJob returns for j, given ID id at at.
func Created(j *store.Job, id int64, at time.Time) *store.Job {
	return &store.Job{
		ID: id, Key: j.Key, After: j.After, Team: j.Team, User: j.User, Workload: j.Workload, Spec: j.Spec,
		State: store.Pending, Attempt: 1, Created: at, Updated: at,
	}
}

// StartJob writes, in the creating transaction, what follows a new job's
// row: its creation event and its first attempt.
func (db *DB) StartJob(ctx context.Context, tx *sql.Tx, id int64, user string, at int64) error {
	if _, err := tx.StmtContext(ctx, db.insertEvent).ExecContext(ctx, id, 1, at, user, "",
		string(store.Pending), 1, "submitted"); err != nil {
		return err
	}
	_, err := tx.StmtContext(ctx, db.insertAttempt).ExecContext(ctx,
		attemptArgs(attemptRow{state: ptr(string(store.Pending))}, id, 1)...)
	return err
}

// KeyTaken is CreateJob's answer when the key it was given is taken: the
// job holding it and an error wrapping store.ErrConflict; read in tx when
// tx is not nil. A nil job means it could not be read (err says why).
func (db *DB) KeyTaken(ctx context.Context, tx *sql.Tx, key string) (*store.Job, error) {
	var q querier = db.r
	if tx != nil {
		q = tx
	}
	old, err := db.ScanJob(db.queryRow(ctx, q, `SELECT `+JobCols+` FROM jobs WHERE key = ?`, key))
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", key, err)
	}
	return old, fmt.Errorf("key %q is job %d: %w", key, old.ID, store.ErrConflict)
}

// GetJob implements store.Store.
func (db *DB) GetJob(ctx context.Context, id int64) (*store.Job, error) {
	j, err := db.ScanJob(db.getJob.QueryRowContext(ctx, id))
	if err != nil {
		return nil, db.errorf("job %d: %w", id, err)
	}
	return j, nil
}

// ListJobs implements store.Store. Workloads and specs, which never change
// once a job is created, come from the store's cache (store.WorkloadCache)
// when it has them and are read only for the other jobs: the reconciler
// lists every active job each round, and reading and decoding those two
// columns was four fifths of its time with a deep queue.
func (db *DB) ListJobs(ctx context.Context, f store.Filter) ([]*store.Job, error) {
	var q strings.Builder
	args := []any{f.AfterID}
	q.WriteString(`id > ?`)
	if f.Team != "" {
		q.WriteString(` AND team = ?`)
		args = append(args, f.Team)
	}
	if len(f.States) > 0 {
		q.WriteString(` AND state IN (`)
		for i, st := range f.States {
			if !st.Valid() {
				return nil, db.errorf("list jobs: %w: unknown state %q", store.ErrInvalid, st)
			}
			if i > 0 {
				q.WriteString(`, `)
			}
			q.WriteString(`?`)
			args = append(args, string(st))
		}
		q.WriteString(`)`)
	}
	q.WriteString(` ORDER BY id`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit)
	}
	out, err := db.ListWhere(ctx, q.String(), args...)
	if err != nil {
		return nil, db.errorf("list jobs: %w", err)
	}
	return out, nil
}

// ListWhere lists the jobs a WHERE clause (with ORDER BY, LIMIT) selects,
// workloads from the cache where it has them.
func (db *DB) ListWhere(ctx context.Context, where string, args ...any) ([]*store.Job, error) {
	out, err := db.listLean(ctx, `SELECT `+leanCols+` FROM jobs WHERE `+where, args)
	if err != nil {
		return nil, err
	}
	missing := map[int64]*store.Job{}
	for _, j := range out {
		if w, spec, ok := db.workloads.Known(j.ID); ok {
			j.Workload, j.Spec = w, spec
		} else {
			missing[j.ID] = j
		}
	}
	if err := db.readWorkloads(ctx, missing); err != nil {
		return nil, err
	}
	for id, j := range missing {
		if j.Workload == nil {
			return nil, fmt.Errorf("job %d has no workload", id)
		}
	}
	return out, nil
}

// listLean runs a query of leanCols.
func (db *DB) listLean(ctx context.Context, query string, args []any) ([]*store.Job, error) {
	rows, err := db.query(ctx, db.r, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Job
	for rows.Next() {
		var (
			j                store.Job
			key              sql.NullString
			placement        []byte
			state            string
			exitCode         sql.NullInt64
			created, updated int64
			started, ended   sql.NullInt64
		)
		if err := rows.Scan(&j.ID, &key, &j.Team, &j.User, &state, &j.Attempt, &j.Reason, &placement,
			&j.Restarts, &exitCode, &created, &updated, &started, &ended, &j.After); err != nil {
			return nil, err
		}
		if err := fillJob(&j, key, state, placement, exitCode, created, updated, started, ended); err != nil {
			return nil, err
		}
		out = append(out, &j)
	}
	return out, rows.Err()
}

// readWorkloads reads and decodes the workload and spec of the jobs in
// jobs, by ID, some hundred at a time.
func (db *DB) readWorkloads(ctx context.Context, jobs map[int64]*store.Job) error {
	ids := make([]int64, 0, len(jobs))
	for id := range jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		ids = ids[n:]
		rows, err := db.query(ctx, db.r, `SELECT id, workload, spec FROM jobs WHERE id IN (?`+
			strings.Repeat(`, ?`, n-1)+`)`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var wl []byte
			var spec string
			if err := rows.Scan(&id, &wl, &spec); err != nil {
				rows.Close()
				return err
			}
			j := jobs[id]
			if j.Workload, err = db.workloads.Decode(id, wl, spec); err != nil {
				rows.Close()
				return fmt.Errorf("job %d: workload: %w", id, err)
			}
			j.Spec = spec
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Scanner is a *sql.Row or *sql.Rows.
type Scanner interface{ Scan(dest ...any) error }

// ScanJob reads one row of JobCols (plus extra destinations) into a Job;
// no row is store.ErrNotFound.
func (db *DB) ScanJob(r Scanner, extra ...any) (*store.Job, error) {
	var (
		j                store.Job
		key              sql.NullString
		wl               []byte
		placement        []byte
		state            string
		exitCode         sql.NullInt64
		created, updated int64
		started, ended   sql.NullInt64
	)
	dest := append([]any{&j.ID, &key, &j.Team, &j.User, &wl, &j.Spec, &state, &j.Attempt, &j.Reason,
		&placement, &j.Restarts, &exitCode, &created, &updated, &started, &ended, &j.After}, extra...)
	if err := r.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	var err error
	if j.Workload, err = db.workloads.Decode(j.ID, wl, j.Spec); err != nil {
		return nil, fmt.Errorf("job %d: workload: %w", j.ID, err)
	}
	if err := fillJob(&j, key, state, placement, exitCode, created, updated, started, ended); err != nil {
		return nil, err
	}
	return &j, nil
}

// fillJob sets j's fields from their columns, other than the workload and
// the spec.
func fillJob(j *store.Job, key sql.NullString, state string, placement []byte, exitCode sql.NullInt64,
	created, updated int64, started, ended sql.NullInt64) error {
	j.Key, j.State = key.String, store.State(state)
	if placement != nil {
		j.Placement = new(store.Placement)
		if err := json.Unmarshal(placement, j.Placement); err != nil {
			return fmt.Errorf("job %d: placement: %w", j.ID, err)
		}
	}
	if exitCode.Valid {
		c := int(exitCode.Int64)
		j.ExitCode = &c
	}
	j.Created, j.Updated = fromNanos(created), fromNanos(updated)
	if started.Valid {
		j.StartedAt = fromNanos(started.Int64)
	}
	if ended.Valid {
		j.EndedAt = fromNanos(ended.Int64)
	}
	return nil
}

func fromNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func ptr[T any](v T) *T { return &v }

// nanos is t in Unix nanoseconds, 0 for the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixNano()
}
