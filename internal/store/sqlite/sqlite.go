package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlstore"
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
	// 5: attempts (store.Attempt), filled from the events of the jobs so
	// far (sqlstore.BackfillAttempts); usage's interval columns renamed
	// as PostgreSQL names them.
	sqlstore.AttemptsTable + `
	ALTER TABLE usage RENAME COLUMN start TO start_at;
	ALTER TABLE usage RENAME COLUMN "end" TO end_at;`,
	// 6: token expiry, revocation and last use (0: none; old tokens keep
	// working), and the keys table (store.SharedKey: the dashboard's CSRF
	// key).
	sqlstore.TokenLife,
}

// steps are the migrations written in Go, by version.
var steps = map[int]sqlstore.Step{5: sqlstore.BackfillAttempts}

// dialect is SQLite's: ? placeholders; a write marks its rows with its
// number (migration 4).
var dialect = sqlstore.Dialect{
	Name:    "sqlite",
	Written: "?",
	WriteMark: func(ctx context.Context, tx *sql.Tx) ([]any, error) {
		n, err := nextWrite(ctx, tx)
		return []any{n}, err
	},
	SchemaTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`,
	RecordVersion: `INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`,
}

// Store is a store.Store (and store.Leader) over one SQLite file: the
// shared SQL layer (sqlstore.DB) plus what SQLite does its own way, the
// group commit of CreateJob and the write numbers of Cursor.
type Store struct {
	*sqlstore.DB
	w *sql.DB // one connection: all writes
	r *sql.DB // read-only connections

	insertJob *sql.Stmt

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
//
// Commits are synchronous=FULL: the WAL is synced at each commit, so an
// acknowledged submission survives a power loss (NORMAL syncs only at
// checkpoints and may lose the last commits; docs/benchmarks.md has the
// cost of FULL).
func Open(path string) (*Store, error) { return open(path, "FULL") }

// open is Open with SQLite's synchronous setting (benchmarks compare).
func open(path, synchronous string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?") {
		return nil, fmt.Errorf("sqlite: open %q: %w: give a file path without '?'", path, store.ErrInvalid)
	}
	// Pages are read through a memory map (up to 256 MiB of the file), not
	// a read call each: listing the reconciler's active jobs took half
	// the time (BenchmarkListPending100k: 21-25 us a job read, 12-14 with
	// the map).
	common := "_busy_timeout=10000&_foreign_keys=1&_synchronous=" + synchronous + "&_pragma=mmap_size(268435456)"
	w, err := sql.Open("sqlite", path+"?_journal_mode=WAL&_txlock=immediate&"+common)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := sqlstore.Migrate(context.Background(), w, dialect, migrations, steps); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w%s", path, err, notWritable(path))
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
	if s.DB, err = sqlstore.New(dialect, w, r); err == nil {
		s.insertJob, err = w.Prepare(`INSERT INTO jobs (key, team, username, workload, spec, state, attempt,
			reason, placement, restarts, exit_code, created, updated, started, ended, seq, after_id, written)
			VALUES (?, ?, ?, ?, ?, 'PENDING', 1, '', NULL, 0, NULL, ?, ?, NULL, NULL, 1, ?, ?)
			ON CONFLICT (key) DO NOTHING RETURNING id`)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// notWritable explains an open that failed because the file or its
// directory takes no writes (SQLite writes the -wal and -shm files beside
// the database): "" when both are writable.
func notWritable(path string) string {
	for _, p := range []string{path, filepath.Dir(path)} {
		err := syscall.Access(p, 2 /* W_OK */)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Sprintf(" (%s is not writable: %v; the broker writes the database and its -wal and -shm files beside it)", p, err)
		}
	}
	return ""
}

// Close releases the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.insertJob != nil {
			s.insertJob.Close()
		}
		if s.DB != nil {
			s.DB.Close()
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
	wl, err := sqlstore.CheckNew(j)
	if err != nil {
		return nil, fmt.Errorf("sqlite: create job: %w", err)
	}
	if at.IsZero() {
		at = time.Now()
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
			err = diskFull(err)
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
	ins := tx.StmtContext(ctx, s.insertJob)
	for _, r := range batch {
		j := r.j
		var key any
		if j.Key != "" {
			key = j.Key
		}
		ns := r.at.UnixNano()
		// An earlier job of this batch is visible: the batch is one
		// transaction.
		if err := s.CheckAfter(ctx, tx, j.After); err != nil {
			return err
		}
		var id int64
		err := ins.QueryRowContext(ctx, key, j.Team, j.User, r.wl, j.Spec, ns, ns, j.After, written).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			// The key is taken (perhaps earlier in this batch): hand back
			// the job that holds it.
			old, err := s.KeyTaken(ctx, tx, j.Key)
			if old == nil {
				return err
			}
			r.job, r.err = old, fmt.Errorf("sqlite: create job: %w", err)
			continue
		}
		if err != nil {
			return err
		}
		if err := s.StartJob(ctx, tx, id, j.User, ns); err != nil {
			return err
		}
		r.job = sqlstore.Created(j, id, r.at)
	}
	return tx.Commit()
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
	// No ORDER BY: with one, SQLite walks the whole table in ID order
	// instead of searching the written index, and a round over a store of
	// 100,000 jobs paid 0.13 s for a handful of changes. The few rows are
	// sorted here.
	out, err := s.ListWhere(ctx, `written > ?`, int64(c))
	if err != nil {
		return nil, c, fmt.Errorf("sqlite: changes since %d: %w", c, err)
	}
	slices.SortFunc(out, func(a, b *store.Job) int { return cmp.Compare(a.ID, b.ID) })
	return out, next, nil
}

// diskFull marks err with store.ErrFull when SQLite could not write for
// want of space (SQLITE_FULL, or ENOSPC from the file system).
func diskFull(err error) error {
	var coded interface{ Code() int }
	if errors.Is(err, syscall.ENOSPC) || errors.As(err, &coded) && coded.Code()&0xff == sqliteFull {
		return fmt.Errorf("%w: %w", store.ErrFull, err)
	}
	return err
}

// sqliteFull is SQLITE_FULL, the primary result code of a write that
// found no space.
const sqliteFull = 13
