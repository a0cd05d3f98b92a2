package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// migrations is the schema history: entry i is version i+1. Append only;
// never edit an entry that has shipped.
var migrations = []string{
	// 1: jobs, their events, fleet versions, tokens, usage, the leader lease.
	`CREATE TABLE job_ids (last BIGINT NOT NULL);
	INSERT INTO job_ids (last) VALUES (0);
	CREATE TABLE jobs (
		id        BIGINT PRIMARY KEY,
		key       TEXT UNIQUE,
		team      TEXT NOT NULL,
		username  TEXT NOT NULL,
		workload  JSONB NOT NULL,
		spec      TEXT NOT NULL,
		state     TEXT NOT NULL,
		attempt   INTEGER NOT NULL,
		reason    TEXT NOT NULL,
		placement JSONB,
		restarts  INTEGER NOT NULL,
		exit_code INTEGER,
		created   BIGINT NOT NULL,
		updated   BIGINT NOT NULL,
		started   BIGINT,
		ended     BIGINT,
		seq       BIGINT NOT NULL
	);
	CREATE INDEX jobs_state ON jobs (state, id);
	CREATE INDEX jobs_team ON jobs (team, id);
	CREATE TABLE events (
		job_id     BIGINT NOT NULL REFERENCES jobs (id),
		seq        BIGINT NOT NULL,
		at         BIGINT NOT NULL,
		actor      TEXT NOT NULL,
		from_state TEXT NOT NULL,
		to_state   TEXT NOT NULL,
		attempt    INTEGER NOT NULL,
		message    TEXT NOT NULL,
		PRIMARY KEY (job_id, seq)
	);
	CREATE TABLE fleets (
		version BIGINT PRIMARY KEY,
		doc     TEXT NOT NULL,
		actor   TEXT NOT NULL,
		at      BIGINT NOT NULL
	);
	CREATE TABLE tokens (
		id      TEXT PRIMARY KEY,
		hash    TEXT NOT NULL UNIQUE,
		team    TEXT NOT NULL,
		role    TEXT NOT NULL,
		name    TEXT NOT NULL,
		created BIGINT NOT NULL
	);
	CREATE TABLE usage (
		id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		job_id      BIGINT NOT NULL,
		attempt     INTEGER NOT NULL,
		team        TEXT NOT NULL,
		provider    TEXT NOT NULL,
		cluster     TEXT NOT NULL,
		pool        TEXT NOT NULL,
		price_class TEXT NOT NULL,
		contract    TEXT NOT NULL,
		gpus        INTEGER NOT NULL,
		start_at    BIGINT NOT NULL,
		end_at      BIGINT NOT NULL,
		cost_usd    DOUBLE PRECISION NOT NULL
	);
	CREATE INDEX usage_start ON usage (start_at, job_id, attempt);
	CREATE TABLE leader (
		name   TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		until  BIGINT NOT NULL
	);`,
	// 2: pipelines: the job a job waits for (store.Job.After; 0: none).
	`ALTER TABLE jobs ADD COLUMN after_id BIGINT NOT NULL DEFAULT 0;`,
	// 3: the transaction that last wrote a job (store.Cursor, Changes).
	// Transactions commit out of the order of their IDs, so a cursor is
	// not the highest ID seen but the oldest transaction still running
	// when it was taken (its snapshot's xmin): every write a reader has
	// not seen yet is by that one or a later one.
	`ALTER TABLE jobs ADD COLUMN written xid8 NOT NULL DEFAULT pg_current_xact_id();
	CREATE INDEX jobs_written ON jobs (written);`,
}

const jobCols = `id, key, team, username, workload, spec, state, attempt, reason,
	placement, restarts, exit_code, created, updated, started, ended, after_id`

// Store is a store.Store and store.Leader over a PostgreSQL database.
type Store struct {
	pool      *pgxpool.Pool
	workloads store.WorkloadCache
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)
var _ store.Leader = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or key=value
// DSN; a search_path parameter picks the schema) and brings its schema up
// to date. The caller must Close the store.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w: %v", store.ErrInvalid, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host,
			cfg.ConnConfig.Database, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One migrator per schema at a time; others wait, then find the
		// work done.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7723, hashtext(current_schema()))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return err
		}
		if have > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this binary knows (%d)", have, len(migrations))
		}
		for v := have + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close releases the pool. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// CreateJob implements store.Store.
func (s *Store) CreateJob(ctx context.Context, j *store.Job, at time.Time) (*store.Job, error) {
	if j == nil || j.Team == "" || j.Workload == nil {
		return nil, fmt.Errorf("postgres: create job: %w: team and workload are required", store.ErrInvalid)
	}
	if j.After < 0 {
		return nil, fmt.Errorf("postgres: create job: %w: after %d is not a job ID", store.ErrInvalid, j.After)
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	wl, err := json.Marshal(j.Workload)
	if err != nil {
		return nil, fmt.Errorf("postgres: create job: %w: workload: %v", store.ErrInvalid, err)
	}
	var key *string
	if j.Key != "" {
		key = &j.Key
	}
	ns := at.UnixNano()

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: create job: %w", err)
	}
	defer tx.Rollback(ctx)
	if j.After != 0 {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM jobs WHERE id = $1`, j.After).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: create job: %w: after: no job %d to wait for", store.ErrInvalid, j.After)
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: create job: %w", err)
		}
	}
	// The counter row's lock is held to commit: IDs are handed out in
	// commit order, and a key conflict rolls the increment back.
	var id int64
	err = tx.QueryRow(ctx, `WITH n AS (UPDATE job_ids SET last = last + 1 RETURNING last),
		j AS (INSERT INTO jobs (id, key, team, username, workload, spec, state, attempt, reason,
				restarts, created, updated, seq, after_id)
			SELECT n.last, $1, $2, $3, $4::jsonb, $5, 'PENDING', 1, '', 0, $6, $6, 1, $7 FROM n
			ON CONFLICT (key) DO NOTHING RETURNING id),
		e AS (INSERT INTO events (job_id, seq, at, actor, from_state, to_state, attempt, message)
			SELECT id, 1, $6, $3, '', 'PENDING', 1, 'submitted' FROM j)
		SELECT id FROM j`, key, j.Team, j.User, string(wl), j.Spec, ns, j.After).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		tx.Rollback(ctx)
		old, err := s.scanJob(s.pool.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE key = $1`, j.Key))
		if err != nil {
			return nil, fmt.Errorf("postgres: create job: key %q: %w", j.Key, err)
		}
		return old, fmt.Errorf("postgres: create job: key %q is job %d: %w", j.Key, old.ID, store.ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: create job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: create job: %w", err)
	}
	return &store.Job{
		ID: id, Key: j.Key, After: j.After, Team: j.Team, User: j.User, Workload: j.Workload, Spec: j.Spec,
		State: store.Pending, Attempt: 1, Created: at, Updated: at,
	}, nil
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id int64) (*store.Job, error) {
	j, err := s.scanJob(s.pool.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("postgres: job %d: %w", id, err)
	}
	return j, nil
}

// ListJobs implements store.Store.
func (s *Store) ListJobs(ctx context.Context, f store.Filter) ([]*store.Job, error) {
	var q strings.Builder
	args := []any{f.AfterID}
	q.WriteString(`SELECT ` + jobCols + ` FROM jobs WHERE id > $1`)
	if f.Team != "" {
		args = append(args, f.Team)
		fmt.Fprintf(&q, ` AND team = $%d`, len(args))
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			if !st.Valid() {
				return nil, fmt.Errorf("postgres: list jobs: %w: unknown state %q", store.ErrInvalid, st)
			}
			states[i] = string(st)
		}
		args = append(args, states)
		fmt.Fprintf(&q, ` AND state = ANY($%d::text[])`, len(args))
	}
	q.WriteString(` ORDER BY id`)
	if f.Limit > 0 {
		args = append(args, f.Limit)
		fmt.Fprintf(&q, ` LIMIT $%d`, len(args))
	}
	rows, err := s.pool.Query(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list jobs: %w", err)
	}
	out, err := s.scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: list jobs: %w", err)
	}
	return out, nil
}

// scanJobs reads and closes rows of jobCols.
func (s *Store) scanJobs(rows pgx.Rows) ([]*store.Job, error) {
	defer rows.Close()
	var out []*store.Job
	for rows.Next() {
		j, err := s.scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Cursor implements store.Store: the xmin of a snapshot taken now (see
// migration 3).
func (s *Store) Cursor(ctx context.Context) (store.Cursor, error) {
	var xmin string
	err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&xmin)
	if err != nil {
		return 0, fmt.Errorf("postgres: cursor: %w", err)
	}
	n, err := strconv.ParseInt(xmin, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("postgres: cursor: transaction ID %q: %w", xmin, err)
	}
	return store.Cursor(n), nil
}

// Changes implements store.Store: the jobs last written by a transaction
// that was still running, or not begun, when c was taken. The next cursor
// is taken first, so nothing committed meanwhile is missed.
func (s *Store) Changes(ctx context.Context, c store.Cursor) ([]*store.Job, store.Cursor, error) {
	next, err := s.Cursor(ctx)
	if err != nil {
		return nil, c, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+jobCols+` FROM jobs WHERE written >= $1::text::xid8 ORDER BY id`,
		strconv.FormatInt(int64(c), 10))
	if err != nil {
		return nil, c, fmt.Errorf("postgres: changes since %d: %w", c, err)
	}
	out, err := s.scanJobs(rows)
	if err != nil {
		return nil, c, fmt.Errorf("postgres: changes since %d: %w", c, err)
	}
	return out, next, nil
}

// MoveJob implements store.Store.
func (s *Store) MoveJob(ctx context.Context, id int64, m store.Move) (*store.Job, error) {
	js, errs, err := s.MoveJobs(ctx, []store.JobMove{{ID: id, Move: m}})
	if err != nil {
		return nil, err
	}
	return js[0], errs[0]
}

// moveSQL updates a job only if it is still in $2 at attempt $12 and
// appends the event, in one statement.
const moveSQL = `WITH u AS (
		UPDATE jobs SET
			state = $3,
			attempt = attempt + $4::int,
			restarts = restarts + $5::int,
			reason = COALESCE($6::text, reason),
			placement = COALESCE($7::jsonb, CASE WHEN $4::int > 0 THEN NULL ELSE placement END),
			exit_code = COALESCE($8::int, exit_code),
			updated = $9::bigint,
			started = COALESCE($10::bigint, started),
			ended = COALESCE($11::bigint, ended),
			seq = seq + 1,
			written = pg_current_xact_id()
		WHERE id = $1 AND state = $2 AND attempt = $12
		RETURNING ` + jobCols + `, seq),
	e AS (INSERT INTO events (job_id, seq, at, actor, from_state, to_state, attempt, message)
		SELECT id, seq, $9::bigint, $13, $2, $3, attempt, $14 FROM u)
	SELECT ` + jobCols + ` FROM u`

// moveArgs are moveSQL's arguments for m.
func moveArgs(id int64, m store.Move) ([]any, error) {
	c, err := m.Columns()
	if err != nil {
		return nil, err
	}
	return []any{id, string(m.From), string(m.To), c.AttemptInc, c.RestartInc, c.Reason, c.Placement, c.ExitCode,
		c.At, c.Started, c.Ended, m.Attempt, m.Actor, m.Message}, nil
}

// MoveJobs implements store.Store: one transaction, one statement a move.
func (s *Store) MoveJobs(ctx context.Context, moves []store.JobMove) ([]*store.Job, []error, error) {
	jobs := make([]*store.Job, len(moves))
	args, errs, ready := store.PrepareMoves("postgres", moves, moveArgs)
	if ready == 0 {
		return jobs, errs, nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i, jm := range moves {
			if args[i] == nil {
				continue
			}
			id, m := jm.ID, jm.Move
			j, err := s.scanJob(tx.QueryRow(ctx, moveSQL, args[i]...))
			if errors.Is(err, store.ErrNotFound) {
				var st string
				var att int
				err := tx.QueryRow(ctx, `SELECT state, attempt FROM jobs WHERE id = $1`, id).Scan(&st, &att)
				switch {
				case errors.Is(err, pgx.ErrNoRows):
					errs[i] = fmt.Errorf("postgres: move job %d: %w", id, store.ErrNotFound)
				case err != nil:
					return err
				default:
					errs[i] = fmt.Errorf("postgres: move job %d: %w: it is %s at attempt %d, not %s at attempt %d",
						id, store.ErrConflict, st, att, m.From, m.Attempt)
				}
				continue
			}
			if err != nil {
				return err
			}
			if m.Usage != nil {
				if _, err := tx.Exec(ctx, usageSQL, usageArgs(*m.Usage)...); err != nil {
					return err
				}
			}
			jobs[i] = j
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: move %d jobs: %w", len(moves), err)
	}
	return jobs, errs, nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, id int64) ([]store.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, at, actor, from_state, to_state, attempt, message
		FROM events WHERE job_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("postgres: events of job %d: %w", id, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		e := store.Event{JobID: id}
		var at int64
		var from, to string
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &from, &to, &e.Attempt, &e.Message); err != nil {
			return nil, fmt.Errorf("postgres: events of job %d: %w", id, err)
		}
		e.At, e.From, e.To = fromNanos(at), store.State(from), store.State(to)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: events of job %d: %w", id, err)
	}
	if len(out) == 0 {
		// Every job has its creation event, so none means no such job.
		return nil, fmt.Errorf("postgres: events of job %d: %w", id, store.ErrNotFound)
	}
	return out, nil
}

// CountByState implements store.Store. Every known state is in the map,
// with 0 when no job is in it.
func (s *Store) CountByState(ctx context.Context) (map[store.State]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, COUNT(*) FROM jobs GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("postgres: count jobs: %w", err)
	}
	defer rows.Close()
	out := map[store.State]int{}
	for _, st := range []store.State{store.Pending, store.Admitted, store.Dispatched, store.Running,
		store.Succeeded, store.Failed, store.Cancelled} {
		out[st] = 0
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("postgres: count jobs: %w", err)
		}
		out[store.State(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count jobs: %w", err)
	}
	return out, nil
}

// PutFleet implements store.Store.
func (s *Store) PutFleet(ctx context.Context, doc string, actor string, at time.Time) (int64, error) {
	if at.IsZero() {
		at = time.Now()
	}
	var v int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Versions are dense: one writer at a time picks max+1.
		if _, err := tx.Exec(ctx, `LOCK TABLE fleets IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO fleets (version, doc, actor, at)
			SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3 FROM fleets RETURNING version`,
			doc, actor, at.UTC().UnixNano()).Scan(&v)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: put fleet: %w", err)
	}
	return v, nil
}

// GetFleet implements store.Store.
func (s *Store) GetFleet(ctx context.Context) (string, int64, error) {
	var doc string
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT doc, version FROM fleets ORDER BY version DESC LIMIT 1`).Scan(&doc, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, fmt.Errorf("postgres: fleet: %w: none applied yet", store.ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("postgres: fleet: %w", err)
	}
	return doc, v, nil
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := checkToken(t); err != nil {
		return fmt.Errorf("postgres: create token: %w", err)
	}
	if t.Created.IsZero() {
		t.Created = time.Now()
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO tokens (id, hash, team, role, name, created)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
		t.ID, t.Hash, t.Team, t.Role, t.Name, t.Created.UTC().UnixNano())
	if err != nil {
		return fmt.Errorf("postgres: create token %s: %w", t.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: create token %s: %w: the id or hash exists", t.ID, store.ErrConflict)
	}
	return nil
}

func checkToken(t store.Token) error {
	if t.ID == "" || t.Hash == "" {
		return fmt.Errorf("%w: token id and hash are required", store.ErrInvalid)
	}
	switch t.Role {
	case "admin", "member", "viewer":
		return nil
	}
	return fmt.Errorf("%w: token role %q; use admin, member or viewer", store.ErrInvalid, t.Role)
}

// TokenByHash implements store.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	var t store.Token
	var created int64
	err := s.pool.QueryRow(ctx, `SELECT id, hash, team, role, name, created FROM tokens WHERE hash = $1`, hash).
		Scan(&t.ID, &t.Hash, &t.Team, &t.Role, &t.Name, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Token{}, fmt.Errorf("postgres: token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("postgres: token: %w", err)
	}
	t.Created = fromNanos(created)
	return t, nil
}

// ListTokens implements store.Store, in ID order.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, hash, team, role, name, created FROM tokens ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		var t store.Token
		var created int64
		if err := rows.Scan(&t.ID, &t.Hash, &t.Team, &t.Role, &t.Name, &created); err != nil {
			return nil, fmt.Errorf("postgres: list tokens: %w", err)
		}
		t.Created = fromNanos(created)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list tokens: %w", err)
	}
	return out, nil
}

// AddUsage implements store.Store: all records or none.
func (s *Store) AddUsage(ctx context.Context, us []store.Usage) error {
	for i, u := range us {
		if err := u.Check(); err != nil {
			return fmt.Errorf("postgres: add usage: record %d: %w", i, err)
		}
	}
	if len(us) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, u := range us {
			b.Queue(usageSQL, usageArgs(u)...)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: add usage: %w", err)
	}
	return nil
}

// usageSQL appends one accounting record; usageArgs are its arguments.
const usageSQL = `INSERT INTO usage (job_id, attempt, team, provider, cluster, pool, price_class, contract,
	gpus, start_at, end_at, cost_usd) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

func usageArgs(u store.Usage) []any {
	return []any{u.JobID, u.Attempt, u.Team, string(u.Provider), u.Cluster, u.Pool, string(u.PriceClass),
		u.Contract, u.GPUs, u.Start.UTC().UnixNano(), u.End.UTC().UnixNano(), u.CostUSD}
}

// ListUsage implements store.Store.
func (s *Store) ListUsage(ctx context.Context, from, to time.Time) ([]store.Usage, error) {
	rows, err := s.pool.Query(ctx, `SELECT job_id, attempt, team, provider, cluster, pool, price_class,
		contract, gpus, start_at, end_at, cost_usd FROM usage WHERE start_at < $1 AND end_at > $2
		ORDER BY start_at, job_id, attempt, id`, to.UTC().UnixNano(), from.UTC().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("postgres: list usage: %w", err)
	}
	defer rows.Close()
	var out []store.Usage
	for rows.Next() {
		var u store.Usage
		var provider, class string
		var start, end int64
		if err := rows.Scan(&u.JobID, &u.Attempt, &u.Team, &provider, &u.Cluster, &u.Pool, &class,
			&u.Contract, &u.GPUs, &start, &end, &u.CostUSD); err != nil {
			return nil, fmt.Errorf("postgres: list usage: %w", err)
		}
		u.Provider, u.PriceClass = model.Provider(provider), model.PriceClass(class)
		u.Start, u.End = fromNanos(start), fromNanos(end)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list usage: %w", err)
	}
	return out, nil
}

// TryLead implements store.Leader: the lease row is taken over when it is
// free, ours, or expired, in one statement.
func (s *Store) TryLead(ctx context.Context, id string, now, until time.Time) (bool, error) {
	if id == "" {
		return false, fmt.Errorf("postgres: lead: %w: empty holder id", store.ErrInvalid)
	}
	var holder string
	err := s.pool.QueryRow(ctx, `INSERT INTO leader (name, holder, until) VALUES ('reconciler', $1, $3)
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
		WHERE leader.holder = $1 OR leader.until < $2
		RETURNING holder`, id, now.UTC().UnixNano(), until.UTC().UnixNano()).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: lead: %w", err)
	}
	return true, nil
}

// scanJob reads one row of jobCols into a Job; no row is ErrNotFound.
func (s *Store) scanJob(r pgx.Row) (*store.Job, error) {
	var (
		j                store.Job
		key              *string
		wl, placement    []byte
		state            string
		exitCode         *int32
		created, updated int64
		started, ended   *int64
	)
	if err := r.Scan(&j.ID, &key, &j.Team, &j.User, &wl, &j.Spec, &state, &j.Attempt, &j.Reason,
		&placement, &j.Restarts, &exitCode, &created, &updated, &started, &ended, &j.After); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	if key != nil {
		j.Key = *key
	}
	j.State = store.State(state)
	var err error
	if j.Workload, err = s.workloads.Decode(j.ID, wl, j.Spec); err != nil {
		return nil, fmt.Errorf("job %d: workload: %w", j.ID, err)
	}
	if placement != nil {
		j.Placement = new(store.Placement)
		if err := json.Unmarshal(placement, j.Placement); err != nil {
			return nil, fmt.Errorf("job %d: placement: %w", j.ID, err)
		}
	}
	if exitCode != nil {
		c := int(*exitCode)
		j.ExitCode = &c
	}
	j.Created, j.Updated = fromNanos(created), fromNanos(updated)
	if started != nil {
		j.StartedAt = fromNanos(*started)
	}
	if ended != nil {
		j.EndedAt = fromNanos(*ended)
	}
	return &j, nil
}

func fromNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }
