package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"gpubroker/internal/model"
	"gpubroker/internal/store"
)

// migrations is the schema history: entry i is version i+1. Append only;
// never edit an entry that has shipped.
var migrations = []string{
	// 1: jobs, their events, fleet versions, tokens, usage.
	`CREATE TABLE jobs (
		id        INTEGER PRIMARY KEY,
		key       TEXT UNIQUE,
		team      TEXT NOT NULL,
		username  TEXT NOT NULL,
		workload  TEXT NOT NULL,
		spec      TEXT NOT NULL,
		state     TEXT NOT NULL,
		attempt   INTEGER NOT NULL,
		reason    TEXT NOT NULL,
		placement TEXT,
		restarts  INTEGER NOT NULL,
		exit_code INTEGER,
		created   INTEGER NOT NULL,
		updated   INTEGER NOT NULL,
		started   INTEGER,
		ended     INTEGER,
		seq       INTEGER NOT NULL
	);
	CREATE INDEX jobs_state ON jobs (state, id);
	CREATE INDEX jobs_team ON jobs (team, id);
	CREATE TABLE events (
		job_id     INTEGER NOT NULL REFERENCES jobs (id),
		seq        INTEGER NOT NULL,
		at         INTEGER NOT NULL,
		actor      TEXT NOT NULL,
		from_state TEXT NOT NULL,
		to_state   TEXT NOT NULL,
		attempt    INTEGER NOT NULL,
		message    TEXT NOT NULL,
		PRIMARY KEY (job_id, seq)
	) WITHOUT ROWID;
	CREATE TABLE fleets (
		version INTEGER PRIMARY KEY,
		doc     TEXT NOT NULL,
		actor   TEXT NOT NULL,
		at      INTEGER NOT NULL
	);
	CREATE TABLE tokens (
		id      TEXT PRIMARY KEY,
		hash    TEXT NOT NULL UNIQUE,
		team    TEXT NOT NULL,
		role    TEXT NOT NULL,
		name    TEXT NOT NULL,
		created INTEGER NOT NULL
	);
	CREATE TABLE usage (
		id          INTEGER PRIMARY KEY,
		job_id      INTEGER NOT NULL,
		attempt     INTEGER NOT NULL,
		team        TEXT NOT NULL,
		provider    TEXT NOT NULL,
		cluster     TEXT NOT NULL,
		pool        TEXT NOT NULL,
		price_class TEXT NOT NULL,
		contract    TEXT NOT NULL,
		gpus        INTEGER NOT NULL,
		start       INTEGER NOT NULL,
		end         INTEGER NOT NULL,
		cost_usd    REAL NOT NULL
	);
	CREATE INDEX usage_start ON usage (start, job_id, attempt);`,
	// 2: the leader lease (store.Leader), for replicas sharing one file.
	`CREATE TABLE leader (
		name   TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		until  INTEGER NOT NULL
	);`,
	// 3: pipelines: the job a job waits for (store.Job.After; 0: none).
	`ALTER TABLE jobs ADD COLUMN after_id INTEGER NOT NULL DEFAULT 0;`,
	// 4: the write that last changed a job (store.Cursor, Changes): each
	// write transaction numbers its rows one past the highest number so
	// far. Writers are serialized (BEGIN IMMEDIATE), so a reader that saw
	// number n has seen every row numbered up to n. Rows from before
	// are write 1, after the zero cursor.
	`ALTER TABLE jobs ADD COLUMN written INTEGER NOT NULL DEFAULT 1;
	CREATE INDEX jobs_written ON jobs (written);`,
}

const jobCols = `id, key, team, username, workload, spec, state, attempt, reason,
	placement, restarts, exit_code, created, updated, started, ended, after_id`

// Store is a store.Store (and store.Leader) over one SQLite file.
type Store struct {
	w *sql.DB // one connection: all writes
	r *sql.DB // read-only connections

	insertJob   *sql.Stmt
	insertEvent *sql.Stmt
	moveJob     *sql.Stmt
	getJob      *sql.Stmt
	addUsage    *sql.Stmt
	workloads   store.WorkloadCache

	// Group commit of CreateJob: see there.
	mu      sync.Mutex
	queue   []*createReq
	leading bool

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)
var _ store.Leader = (*Store)(nil)

// Open opens (creating if needed) the database at path and brings its
// schema up to date. The caller must Close the store.
func Open(path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?") {
		return nil, fmt.Errorf("sqlite: open %q: %w: give a file path without '?'", path, store.ErrInvalid)
	}
	// Pages are read through a memory map (up to 256 MiB of the file), not
	// a read call each: listing the reconciler's active jobs took half
	// the time (BenchmarkListPending100k: 21-25 us a job read, 12-14 with
	// the map).
	const common = "_busy_timeout=10000&_foreign_keys=1&_synchronous=NORMAL&_pragma=mmap_size(268435456)"
	w, err := sql.Open("sqlite", path+"?_journal_mode=WAL&_txlock=immediate&"+common)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.migrate(); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?_query_only=1&"+common)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	if err := s.prepare(); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate() error {
	tx, err := s.w.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`); err != nil {
		return err
	}
	var have int
	if err := tx.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if _, err := tx.Exec(migrations[v-1]); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`,
			v, time.Now().UnixNano()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s *Store) prepare() error {
	for _, p := range []struct {
		st  **sql.Stmt
		db  *sql.DB
		sql string
	}{
		{&s.insertJob, s.w, `INSERT INTO jobs (key, team, username, workload, spec, state, attempt,
			reason, placement, restarts, exit_code, created, updated, started, ended, seq, after_id, written)
			VALUES (?, ?, ?, ?, ?, 'PENDING', 1, '', NULL, 0, NULL, ?, ?, NULL, NULL, 1, ?, ?)
			ON CONFLICT (key) DO NOTHING RETURNING id`},
		{&s.insertEvent, s.w, `INSERT INTO events (job_id, seq, at, actor, from_state, to_state, attempt, message)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.moveJob, s.w, `UPDATE jobs SET
			state = ?3,
			attempt = attempt + ?4,
			restarts = restarts + ?5,
			reason = COALESCE(?6, reason),
			placement = COALESCE(?7, CASE WHEN ?4 > 0 THEN NULL ELSE placement END),
			exit_code = COALESCE(?8, exit_code),
			updated = ?9,
			started = COALESCE(?10, started),
			ended = COALESCE(?11, ended),
			seq = seq + 1,
			written = ?13
			WHERE id = ?1 AND state = ?2 AND attempt = ?12
			RETURNING ` + jobCols + `, seq`},
		{&s.getJob, s.r, `SELECT ` + jobCols + ` FROM jobs WHERE id = ?`},
		{&s.addUsage, s.w, `INSERT INTO usage (job_id, attempt, team, provider, cluster, pool,
			price_class, contract, gpus, start, end, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
	} {
		st, err := p.db.Prepare(p.sql)
		if err != nil {
			return err
		}
		*p.st = st
	}
	return nil
}

// Close releases the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		for _, st := range []*sql.Stmt{s.insertJob, s.insertEvent, s.moveJob, s.getJob, s.addUsage} {
			if st != nil {
				st.Close()
			}
		}
		var errs []error
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// CreateJob implements store.Store.
//
// Creates are group-committed: while one caller's transaction runs, others
// queue, and the next of them commits the whole queue in one transaction
// (IDs still in queue order, which is commit order). Under concurrent
// submissions this amortizes the per-commit cost; a lone caller commits
// alone. Once queued, a create is not withdrawn when ctx ends.
func (s *Store) CreateJob(ctx context.Context, j *store.Job, at time.Time) (*store.Job, error) {
	if j == nil || j.Team == "" || j.Workload == nil {
		return nil, fmt.Errorf("sqlite: create job: %w: team and workload are required", store.ErrInvalid)
	}
	if j.After < 0 {
		return nil, fmt.Errorf("sqlite: create job: %w: after %d is not a job ID", store.ErrInvalid, j.After)
	}
	if at.IsZero() {
		at = time.Now()
	}
	wl, err := json.Marshal(j.Workload)
	if err != nil {
		return nil, fmt.Errorf("sqlite: create job: %w: workload: %v", store.ErrInvalid, err)
	}
	r := &createReq{ctx: ctx, j: j, wl: string(wl), at: at.UTC(),
		lead: make(chan struct{}, 1), done: make(chan struct{})}

	s.mu.Lock()
	s.queue = append(s.queue, r)
	if s.leading {
		s.mu.Unlock()
		select {
		case <-r.done:
			return r.job, r.err
		case <-r.lead: // the previous committer handed over; r heads the queue
		}
		s.mu.Lock()
	}
	s.leading = true
	n := min(len(s.queue), maxBatch)
	batch := slices.Clone(s.queue[:n])
	s.queue = slices.Delete(s.queue, 0, n)
	s.mu.Unlock()

	s.commitCreates(batch)

	s.mu.Lock()
	if len(s.queue) > 0 {
		s.queue[0].lead <- struct{}{}
	} else {
		s.leading = false
	}
	s.mu.Unlock()
	<-r.done
	return r.job, r.err
}

// maxBatch bounds one group commit.
const maxBatch = 256

// createReq is one queued CreateJob.
type createReq struct {
	ctx  context.Context
	j    *store.Job
	wl   string
	at   time.Time
	job  *store.Job
	err  error
	lead chan struct{} // "you commit the queue now"
	done chan struct{} // closed when job and err are set
}

// commitCreates writes batch in one transaction; if that fails as a whole,
// each request is retried alone so one bad request fails only itself.
func (s *Store) commitCreates(batch []*createReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("sqlite: create job: %w", err)
			continue
		}
		live = append(live, r)
	}
	if err := s.createTx(live); err != nil && len(live) > 1 {
		for _, r := range live {
			s.createTx([]*createReq{r})
		}
	}
	for _, r := range batch {
		close(r.done)
	}
}

// createTx inserts every request of batch in one transaction and sets each
// request's result. An error means nothing was written.
func (s *Store) createTx(batch []*createReq) (err error) {
	if len(batch) == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			for _, r := range batch {
				r.job, r.err = nil, fmt.Errorf("sqlite: create job: %w", err)
			}
		}
	}()
	ctx := batch[0].ctx
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	written, err := nextWrite(ctx, tx)
	if err != nil {
		return err
	}
	ins, ev := tx.StmtContext(ctx, s.insertJob), tx.StmtContext(ctx, s.insertEvent)
	for _, r := range batch {
		j := r.j
		var key any
		if j.Key != "" {
			key = j.Key
		}
		ns := r.at.UnixNano()
		if j.After != 0 {
			// An earlier job of this batch is visible: the batch is one
			// transaction.
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE id = ?`, j.After).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: after: no job %d to wait for", store.ErrInvalid, j.After)
			}
			if err != nil {
				return err
			}
		}
		var id int64
		err := ins.QueryRowContext(ctx, key, j.Team, j.User, r.wl, j.Spec, ns, ns, j.After, written).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			// The key is taken (perhaps earlier in this batch): hand back
			// the job that holds it.
			old, err := s.scanJob(tx.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE key = ?`, j.Key))
			if err != nil {
				return fmt.Errorf("key %q: %w", j.Key, err)
			}
			r.job, r.err = old, fmt.Errorf("sqlite: create job: key %q is job %d: %w", j.Key, old.ID, store.ErrConflict)
			continue
		}
		if err != nil {
			return err
		}
		if _, err := ev.ExecContext(ctx, id, 1, ns, j.User, "", string(store.Pending), 1, "submitted"); err != nil {
			return err
		}
		r.job = &store.Job{
			ID: id, Key: j.Key, After: j.After, Team: j.Team, User: j.User, Workload: j.Workload, Spec: j.Spec,
			State: store.Pending, Attempt: 1, Created: r.at, Updated: r.at,
		}
	}
	return tx.Commit()
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id int64) (*store.Job, error) {
	j, err := s.scanJob(s.getJob.QueryRowContext(ctx, id))
	if err != nil {
		return nil, fmt.Errorf("sqlite: job %d: %w", id, err)
	}
	return j, nil
}

// ListJobs implements store.Store. Workloads and specs, which never change
// once a job is created, come from the store's cache (store.WorkloadCache)
// when it has them and are read only for the other jobs: the reconciler
// lists every active job each round, and reading and decoding those two
// columns was four fifths of its time with a deep queue.
func (s *Store) ListJobs(ctx context.Context, f store.Filter) ([]*store.Job, error) {
	var q strings.Builder
	args := []any{f.AfterID}
	q.WriteString(`SELECT ` + leanCols + ` FROM jobs WHERE id > ?`)
	if f.Team != "" {
		q.WriteString(` AND team = ?`)
		args = append(args, f.Team)
	}
	if len(f.States) > 0 {
		q.WriteString(` AND state IN (`)
		for i, st := range f.States {
			if !st.Valid() {
				return nil, fmt.Errorf("sqlite: list jobs: %w: unknown state %q", store.ErrInvalid, st)
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
	out, err := s.listLean(ctx, q.String(), args)
	if err == nil {
		err = s.addWorkloads(ctx, out)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list jobs: %w", err)
	}
	return out, nil
}

// nextWrite is the number of the write transaction tx (see migration 4).
func nextWrite(ctx context.Context, tx *sql.Tx) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(written), 0) + 1 FROM jobs`).Scan(&n)
	return n, err
}

// Cursor implements store.Store: the number of the last write.
func (s *Store) Cursor(ctx context.Context) (store.Cursor, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(written), 0) FROM jobs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: cursor: %w", err)
	}
	return store.Cursor(n), nil
}

// Changes implements store.Store: the jobs whose last write is numbered
// after c. The next cursor is taken first, so a write committed between
// the two reads is listed again next time rather than missed.
func (s *Store) Changes(ctx context.Context, c store.Cursor) ([]*store.Job, store.Cursor, error) {
	next, err := s.Cursor(ctx)
	if err != nil {
		return nil, c, err
	}
	if next == c {
		return nil, c, nil
	}
	out, err := s.listLean(ctx, `SELECT `+leanCols+` FROM jobs WHERE written > ? ORDER BY id`, []any{int64(c)})
	if err == nil {
		err = s.addWorkloads(ctx, out)
	}
	if err != nil {
		return nil, c, fmt.Errorf("sqlite: changes since %d: %w", c, err)
	}
	return out, next, nil
}

// addWorkloads sets the workload and spec of each listed job: from the
// cache when it has them, read for the others.
func (s *Store) addWorkloads(ctx context.Context, out []*store.Job) error {
	missing := map[int64]*store.Job{}
	for _, j := range out {
		if w, spec, ok := s.workloads.Known(j.ID); ok {
			j.Workload, j.Spec = w, spec
		} else {
			missing[j.ID] = j
		}
	}
	if err := s.readWorkloads(ctx, missing); err != nil {
		return err
	}
	for id, j := range missing {
		if j.Workload == nil {
			return fmt.Errorf("job %d has no workload", id)
		}
	}
	return nil
}

// leanCols are jobCols without the workload and the spec.
const leanCols = `id, key, team, username, state, attempt, reason,
	placement, restarts, exit_code, created, updated, started, ended, after_id`

// listLean runs a query of leanCols.
func (s *Store) listLean(ctx context.Context, query string, args []any) ([]*store.Job, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
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
func (s *Store) readWorkloads(ctx context.Context, jobs map[int64]*store.Job) error {
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
		rows, err := s.r.QueryContext(ctx, `SELECT id, workload, spec FROM jobs WHERE id IN (?`+
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
			if j.Workload, err = s.workloads.Decode(id, wl, spec); err != nil {
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

// MoveJob implements store.Store.
func (s *Store) MoveJob(ctx context.Context, id int64, m store.Move) (*store.Job, error) {
	js, errs, err := s.MoveJobs(ctx, []store.JobMove{{ID: id, Move: m}})
	if err != nil {
		return nil, err
	}
	return js[0], errs[0]
}

// moveArgs are the moveJob statement's arguments for m, ?1 to ?12; MoveJobs
// adds ?13, its transaction's write number.
func moveArgs(id int64, m store.Move) ([]any, error) {
	c, err := m.Columns()
	if err != nil {
		return nil, err
	}
	return []any{id, string(m.From), string(m.To), c.AttemptInc, c.RestartInc, c.Reason, c.Placement,
		c.ExitCode, c.At, c.Started, c.Ended, m.Attempt}, nil
}

// MoveJobs implements store.Store.
func (s *Store) MoveJobs(ctx context.Context, moves []store.JobMove) ([]*store.Job, []error, error) {
	jobs := make([]*store.Job, len(moves))
	args, errs, ready := store.PrepareMoves("sqlite", moves, moveArgs)
	if ready == 0 {
		return jobs, errs, nil
	}
	fail := func(err error) ([]*store.Job, []error, error) {
		return nil, nil, fmt.Errorf("sqlite: move %d jobs: %w", len(moves), err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	written, err := nextWrite(ctx, tx)
	if err != nil {
		return fail(err)
	}
	mv, ev := tx.StmtContext(ctx, s.moveJob), tx.StmtContext(ctx, s.insertEvent)
	for i, jm := range moves {
		if args[i] == nil {
			continue
		}
		id, m := jm.ID, jm.Move
		var seq int64
		j, err := s.scanJob(mv.QueryRowContext(ctx, append(args[i], written)...), &seq)
		if errors.Is(err, store.ErrNotFound) {
			var st string
			var att int
			err := tx.QueryRowContext(ctx, `SELECT state, attempt FROM jobs WHERE id = ?`, id).Scan(&st, &att)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				errs[i] = fmt.Errorf("sqlite: move job %d: %w", id, store.ErrNotFound)
			case err != nil:
				return fail(err)
			default:
				errs[i] = fmt.Errorf("sqlite: move job %d: %w: it is %s at attempt %d, not %s at attempt %d",
					id, store.ErrConflict, st, att, m.From, m.Attempt)
			}
			continue
		}
		if err != nil {
			return fail(err)
		}
		if _, err := ev.ExecContext(ctx, id, seq, args[i][8], m.Actor, string(m.From), string(m.To),
			j.Attempt, m.Message); err != nil {
			return fail(err)
		}
		if m.Usage != nil {
			if err := s.insertUsage(ctx, tx, *m.Usage); err != nil {
				return fail(err)
			}
		}
		jobs[i] = j
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return jobs, errs, nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, id int64) ([]store.Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, at, actor, from_state, to_state, attempt, message
		FROM events WHERE job_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events of job %d: %w", id, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		e := store.Event{JobID: id}
		var at int64
		var from, to string
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &from, &to, &e.Attempt, &e.Message); err != nil {
			return nil, fmt.Errorf("sqlite: events of job %d: %w", id, err)
		}
		e.At, e.From, e.To = fromNanos(at), store.State(from), store.State(to)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: events of job %d: %w", id, err)
	}
	if len(out) == 0 {
		// Every job has its creation event, so none means no such job.
		return nil, fmt.Errorf("sqlite: events of job %d: %w", id, store.ErrNotFound)
	}
	return out, nil
}

// CountByState implements store.Store. Every known state is in the map,
// with 0 when no job is in it.
func (s *Store) CountByState(ctx context.Context) (map[store.State]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM jobs GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count jobs: %w", err)
	}
	defer rows.Close()
	out := zeroCounts()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("sqlite: count jobs: %w", err)
		}
		out[store.State(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: count jobs: %w", err)
	}
	return out, nil
}

func zeroCounts() map[store.State]int {
	m := make(map[store.State]int, 7)
	for _, st := range []store.State{store.Pending, store.Admitted, store.Dispatched, store.Running,
		store.Succeeded, store.Failed, store.Cancelled} {
		m[st] = 0
	}
	return m
}

// PutFleet implements store.Store.
func (s *Store) PutFleet(ctx context.Context, doc string, actor string, at time.Time) (int64, error) {
	if at.IsZero() {
		at = time.Now()
	}
	var v int64
	err := s.w.QueryRowContext(ctx, `INSERT INTO fleets (doc, actor, at) VALUES (?, ?, ?) RETURNING version`,
		doc, actor, at.UTC().UnixNano()).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("sqlite: put fleet: %w", err)
	}
	return v, nil
}

// GetFleet implements store.Store.
func (s *Store) GetFleet(ctx context.Context) (string, int64, error) {
	var doc string
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT doc, version FROM fleets ORDER BY version DESC LIMIT 1`).Scan(&doc, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("sqlite: fleet: %w: none applied yet", store.ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("sqlite: fleet: %w", err)
	}
	return doc, v, nil
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := checkToken(t); err != nil {
		return fmt.Errorf("sqlite: create token: %w", err)
	}
	if t.Created.IsZero() {
		t.Created = time.Now()
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO tokens (id, hash, team, role, name, created)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		t.ID, t.Hash, t.Team, t.Role, t.Name, t.Created.UTC().UnixNano())
	if err != nil {
		return fmt.Errorf("sqlite: create token %s: %w", t.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("sqlite: create token %s: %w: the id or hash exists", t.ID, store.ErrConflict)
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
	err := s.r.QueryRowContext(ctx, `SELECT id, hash, team, role, name, created FROM tokens WHERE hash = ?`, hash).
		Scan(&t.ID, &t.Hash, &t.Team, &t.Role, &t.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("sqlite: token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("sqlite: token: %w", err)
	}
	t.Created = fromNanos(created)
	return t, nil
}

// ListTokens implements store.Store, in ID order.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, hash, team, role, name, created FROM tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		var t store.Token
		var created int64
		if err := rows.Scan(&t.ID, &t.Hash, &t.Team, &t.Role, &t.Name, &created); err != nil {
			return nil, fmt.Errorf("sqlite: list tokens: %w", err)
		}
		t.Created = fromNanos(created)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	return out, nil
}

// AddUsage implements store.Store: all records or none.
func (s *Store) AddUsage(ctx context.Context, us []store.Usage) error {
	for i, u := range us {
		if err := u.Check(); err != nil {
			return fmt.Errorf("sqlite: add usage: record %d: %w", i, err)
		}
	}
	if len(us) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: add usage: %w", err)
	}
	defer tx.Rollback()
	for _, u := range us {
		if err := s.insertUsage(ctx, tx, u); err != nil {
			return fmt.Errorf("sqlite: add usage: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: add usage: %w", err)
	}
	return nil
}

// insertUsage appends one accounting record in tx.
func (s *Store) insertUsage(ctx context.Context, tx *sql.Tx, u store.Usage) error {
	_, err := tx.StmtContext(ctx, s.addUsage).ExecContext(ctx, u.JobID, u.Attempt, u.Team, string(u.Provider), u.Cluster, u.Pool, string(u.PriceClass), u.Contract,
		u.GPUs, u.Start.UTC().UnixNano(), u.End.UTC().UnixNano(), u.CostUSD)
	return err
}

// ListUsage implements store.Store.
func (s *Store) ListUsage(ctx context.Context, from, to time.Time) ([]store.Usage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT job_id, attempt, team, provider, cluster, pool, price_class,
		contract, gpus, start, end, cost_usd FROM usage WHERE start < ? AND end > ?
		ORDER BY start, job_id, attempt, id`, to.UTC().UnixNano(), from.UTC().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sqlite: list usage: %w", err)
	}
	defer rows.Close()
	var out []store.Usage
	for rows.Next() {
		var u store.Usage
		var provider, class string
		var start, end int64
		if err := rows.Scan(&u.JobID, &u.Attempt, &u.Team, &provider, &u.Cluster, &u.Pool, &class,
			&u.Contract, &u.GPUs, &start, &end, &u.CostUSD); err != nil {
			return nil, fmt.Errorf("sqlite: list usage: %w", err)
		}
		u.Provider, u.PriceClass = model.Provider(provider), model.PriceClass(class)
		u.Start, u.End = fromNanos(start), fromNanos(end)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list usage: %w", err)
	}
	return out, nil
}

// TryLead implements store.Leader for brokers sharing one database file.
func (s *Store) TryLead(ctx context.Context, id string, now, until time.Time) (bool, error) {
	if id == "" {
		return false, fmt.Errorf("sqlite: lead: %w: empty holder id", store.ErrInvalid)
	}
	rows, err := s.w.QueryContext(ctx, `INSERT INTO leader (name, holder, until) VALUES ('reconciler', ?1, ?3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leader.holder = ?1 OR leader.until < ?2
		RETURNING holder`, id, now.UTC().UnixNano(), until.UTC().UnixNano())
	if err != nil {
		return false, fmt.Errorf("sqlite: lead: %w", err)
	}
	defer rows.Close()
	won := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("sqlite: lead: %w", err)
	}
	return won, nil
}

type scanner interface{ Scan(dest ...any) error }

// scanJob reads one row of jobCols (plus extra destinations) into a Job;
// no row is ErrNotFound.
func (s *Store) scanJob(r scanner, extra ...any) (*store.Job, error) {
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
	if j.Workload, err = s.workloads.Decode(j.ID, wl, j.Spec); err != nil {
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
