package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"gpubroker/internal/store"
	"gpubroker/internal/store/sqlstore"
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
	// 4: attempts (store.Attempt), filled from the events of the jobs so
	// far (sqlstore.BackfillAttempts).
	sqlstore.AttemptsTable,
	// 5: token expiry, revocation and last use (0: none; old tokens keep
	// working), and the keys table (store.SharedKey: the dashboard's CSRF
	// key).
	sqlstore.TokenLife,
}

// steps are the migrations written in Go, by version.
var steps = map[int]sqlstore.Step{4: sqlstore.BackfillAttempts}

// dialect is PostgreSQL's: $n placeholders; a write marks its rows with
// its transaction's ID (migration 3); one migrator per schema at a time
// (others wait, then find the work done).
var dialect = sqlstore.Dialect{
	Name:        "postgres",
	Numbered:    true,
	Written:     "pg_current_xact_id()",
	LockFleets:  `LOCK TABLE fleets IN SHARE ROW EXCLUSIVE MODE`,
	ByteOrder:   ` COLLATE "C"`,
	MigrateLock: `SELECT pg_advisory_xact_lock(7723, hashtext(current_schema()))`,
	SchemaTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())`,
	RecordVersion: `INSERT INTO schema_migrations (version, applied)
		VALUES (?, to_timestamp(CAST(? AS BIGINT) / 1e9))`,
}

// Store is a store.Store and store.Leader over a PostgreSQL database: the
// shared SQL layer (sqlstore.DB, through pgx's database/sql adapter) plus
// what PostgreSQL does its own way, the job ID counter of CreateJob and
// the transaction IDs of Cursor.
type Store struct {
	*sqlstore.DB
	pool      *pgxpool.Pool
	db        *sql.DB // over pool
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
	s := &Store{pool: pool, db: stdlib.OpenDBFromPool(pool)}
	if err := sqlstore.Migrate(ctx, s.db, dialect, migrations, steps); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: open %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host,
			cfg.ConnConfig.Database, err)
	}
	if s.DB, err = sqlstore.New(dialect, s.db, s.db); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return s, nil
}

// Close releases the pool. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.DB != nil {
			s.DB.Close()
		}
		s.db.Close()
		s.pool.Close()
	})
	return nil
}

// createSQL takes the next job ID from the counter row and inserts the
// job, its creation event and its first attempt, in one statement; no row
// when the key is taken. The counter row's lock is held to commit: IDs
// are handed out in commit order, and a key conflict rolls the increment
// back.
const createSQL = `WITH n AS (UPDATE job_ids SET last = last + 1 RETURNING last),
	j AS (INSERT INTO jobs (id, key, team, username, workload, spec, state, attempt, reason,
			restarts, created, updated, seq, after_id)
		SELECT n.last, $1, $2, $3, $4::jsonb, $5, 'PENDING', 1, '', 0, $6, $6, 1, $7 FROM n
		ON CONFLICT (key) DO NOTHING RETURNING id),
	e AS (INSERT INTO events (job_id, seq, at, actor, from_state, to_state, attempt, message)
		SELECT id, 1, $6, $3, '', 'PENDING', 1, 'submitted' FROM j),
	a AS (INSERT INTO attempts (job_id, attempt, state) SELECT id, 1, 'PENDING' FROM j)
	SELECT id FROM j`

// CreateJob implements store.Store.
func (s *Store) CreateJob(ctx context.Context, j *store.Job, at time.Time) (*store.Job, error) {
	wl, err := sqlstore.CheckNew(j)
	if err != nil {
		return nil, fmt.Errorf("postgres: create job: %w", err)
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	var key *string
	if j.Key != "" {
		key = &j.Key
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: create job: %w", err)
	}
	defer tx.Rollback()
	if err := s.CheckAfter(ctx, tx, j.After); err != nil {
		return nil, fmt.Errorf("postgres: create job: %w", err)
	}
	var id int64
	err = tx.QueryRowContext(ctx, createSQL, key, j.Team, j.User, string(wl), j.Spec, at.UnixNano(), j.After).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		tx.Rollback()
		old, err := s.KeyTaken(ctx, nil, j.Key)
		return old, fmt.Errorf("postgres: create job: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: create job: %w", diskFull(err))
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("postgres: create job: %w", diskFull(err))
	}
	return sqlstore.Created(j, id, at), nil
}

// diskFull marks err with store.ErrFull when PostgreSQL could not write
// for want of space (SQLSTATE 53100, disk_full).
func diskFull(err error) error {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) && pe.SQLState() == "53100" {
		return fmt.Errorf("%w: %w", store.ErrFull, err)
	}
	return err
}

// Cursor implements store.Store: the xmin of a snapshot taken now (see
// migration 3).
func (s *Store) Cursor(ctx context.Context) (store.Cursor, error) {
	var xmin string
	err := s.db.QueryRowContext(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&xmin)
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
	out, err := s.ListWhere(ctx, `written >= ?::text::xid8 ORDER BY id`, strconv.FormatInt(int64(c), 10))
	if err != nil {
		return nil, c, fmt.Errorf("postgres: changes since %d: %w", c, err)
	}
	return out, next, nil
}
