package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// Events implements store.Store.
func (db *DB) Events(ctx context.Context, id int64) ([]store.Event, error) {
	rows, err := db.query(ctx, db.r, `SELECT seq, at, actor, from_state, to_state, attempt, message
		FROM events WHERE job_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, db.errorf("events of job %d: %w", id, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		e := store.Event{JobID: id}
		var at int64
		var from, to string
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &from, &to, &e.Attempt, &e.Message); err != nil {
			return nil, db.errorf("events of job %d: %w", id, err)
		}
		e.At, e.From, e.To = fromNanos(at), store.State(from), store.State(to)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, db.errorf("events of job %d: %w", id, err)
	}
	if len(out) == 0 {
		// Every job has its creation event, so none means no such job.
		return nil, db.errorf("events of job %d: %w", id, store.ErrNotFound)
	}
	return out, nil
}

// CountByState implements store.Store. Every known state is in the map,
// with 0 when no job is in it.
func (db *DB) CountByState(ctx context.Context) (map[store.State]int, error) {
	rows, err := db.query(ctx, db.r, `SELECT state, COUNT(*) FROM jobs GROUP BY state`)
	if err != nil {
		return nil, db.errorf("count jobs: %w", err)
	}
	defer rows.Close()
	out := make(map[store.State]int, 7)
	for _, st := range []store.State{store.Pending, store.Admitted, store.Dispatched, store.Running,
		store.Succeeded, store.Failed, store.Cancelled} {
		out[st] = 0
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, db.errorf("count jobs: %w", err)
		}
		out[store.State(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, db.errorf("count jobs: %w", err)
	}
	return out, nil
}

// PutFleet implements store.Store. Versions are dense: one writer at a
// time (Dialect.LockFleets) picks the highest plus one.
func (db *DB) PutFleet(ctx context.Context, doc string, actor string, at time.Time) (int64, error) {
	if at.IsZero() {
		at = time.Now()
	}
	v, err := db.inTx(ctx, func(tx *sql.Tx) (int64, error) {
		if db.d.LockFleets != "" {
			if _, err := tx.ExecContext(ctx, db.d.LockFleets); err != nil {
				return 0, err
			}
		}
		var v int64
		err := db.queryRow(ctx, tx, `INSERT INTO fleets (version, doc, actor, at)
			SELECT COALESCE(MAX(version), 0) + 1, ?, ?, ? FROM fleets RETURNING version`,
			doc, actor, at.UTC().UnixNano()).Scan(&v)
		return v, err
	})
	if err != nil {
		return 0, db.errorf("put fleet: %w", err)
	}
	return v, nil
}

// inTx runs f in a write transaction, committed when f returns no error.
func (db *DB) inTx(ctx context.Context, f func(tx *sql.Tx) (int64, error)) (int64, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	v, err := f(tx)
	if err != nil {
		return 0, err
	}
	return v, tx.Commit()
}

// GetFleet implements store.Store.
func (db *DB) GetFleet(ctx context.Context) (string, int64, error) {
	var doc string
	var v int64
	err := db.r.QueryRowContext(ctx, `SELECT doc, version FROM fleets ORDER BY version DESC LIMIT 1`).Scan(&doc, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, db.errorf("fleet: %w: none applied yet", store.ErrNotFound)
	}
	if err != nil {
		return "", 0, db.errorf("fleet: %w", err)
	}
	return doc, v, nil
}

// AddUsage implements store.Store: all records or none.
func (db *DB) AddUsage(ctx context.Context, us []store.Usage) error {
	for i, u := range us {
		if err := u.Check(); err != nil {
			return db.errorf("add usage: record %d: %w", i, err)
		}
	}
	if len(us) == 0 {
		return nil
	}
	_, err := db.inTx(ctx, func(tx *sql.Tx) (int64, error) {
		for _, u := range us {
			if err := db.insertUsage(ctx, tx, u); err != nil {
				return 0, err
			}
		}
		return 0, nil
	})
	if err != nil {
		return db.errorf("add usage: %w", err)
	}
	return nil
}

// insertUsage appends one accounting record in tx.
func (db *DB) insertUsage(ctx context.Context, tx *sql.Tx, u store.Usage) error {
	_, err := tx.StmtContext(ctx, db.addUsage).ExecContext(ctx, u.JobID, u.Attempt, u.Team, string(u.Provider),
		u.Cluster, u.Pool, string(u.PriceClass), u.Contract, u.GPUs, u.Start.UTC().UnixNano(),
		u.End.UTC().UnixNano(), u.CostUSD)
	return err
}

// ListUsage implements store.Store.
func (db *DB) ListUsage(ctx context.Context, from, to time.Time) ([]store.Usage, error) {
	rows, err := db.query(ctx, db.r, `SELECT job_id, attempt, team, provider, cluster, pool, price_class,
		contract, gpus, start_at, end_at, cost_usd FROM usage WHERE start_at < ? AND end_at > ?
		ORDER BY start_at, job_id, attempt, id`, to.UTC().UnixNano(), from.UTC().UnixNano())
	if err != nil {
		return nil, db.errorf("list usage: %w", err)
	}
	defer rows.Close()
	var out []store.Usage
	for rows.Next() {
		var u store.Usage
		var provider, class string
		var start, end int64
		if err := rows.Scan(&u.JobID, &u.Attempt, &u.Team, &provider, &u.Cluster, &u.Pool, &class,
			&u.Contract, &u.GPUs, &start, &end, &u.CostUSD); err != nil {
			return nil, db.errorf("list usage: %w", err)
		}
		u.Provider, u.PriceClass = model.Provider(provider), model.PriceClass(class)
		u.Start, u.End = fromNanos(start), fromNanos(end)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, db.errorf("list usage: %w", err)
	}
	return out, nil
}

// TryLead implements store.Leader with a lease row, taken over when it is
// free, ours, or expired, in one statement.
func (db *DB) TryLead(ctx context.Context, id string, now, until time.Time) (bool, error) {
	if id == "" {
		return false, db.errorf("lead: %w: empty holder id", store.ErrInvalid)
	}
	var holder string
	err := db.queryRow(ctx, db.w, `INSERT INTO leader (name, holder, until) VALUES ('reconciler', ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leader.holder = ? OR leader.until < ?
		RETURNING holder`, id, until.UTC().UnixNano(), id, now.UTC().UnixNano()).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, db.errorf("lead: %w", err)
	}
	return true, nil
}

// memberPrefix names the leader table's rows that are brokers' beats
// (store.Members), beside the 'reconciler' lease: name 'broker:ID',
// holder the broker's host.
const memberPrefix = "broker:"

// Beat implements store.Members: the broker id, on host, is alive until
// until.
func (db *DB) Beat(ctx context.Context, id, host string, until time.Time) error {
	if id == "" || host == "" {
		return db.errorf("beat: %w: empty broker id or host", store.ErrInvalid)
	}
	_, err := db.w.ExecContext(ctx, db.d.Bind(`INSERT INTO leader (name, holder, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until`),
		memberPrefix+id, host, until.UTC().UnixNano())
	if err != nil {
		return db.errorf("beat: %w", err)
	}
	return nil
}

// LiveHosts implements store.Members: the hosts of the brokers whose
// beat is valid at now.
func (db *DB) LiveHosts(ctx context.Context, now time.Time) (map[string]bool, error) {
	rows, err := db.query(ctx, db.r, `SELECT holder FROM leader WHERE name LIKE ? AND until >= ?`,
		memberPrefix+"%", now.UTC().UnixNano())
	if err != nil {
		return nil, db.errorf("live hosts: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, db.errorf("live hosts: %w", err)
		}
		out[h] = true
	}
	if err := rows.Err(); err != nil {
		return nil, db.errorf("live hosts: %w", err)
	}
	return out, nil
}
