package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"gpubroker/internal/store"
)

// moveSQL updates a job only if it is still in the move's From at its
// Attempt, and returns the job after it and its event number. Arguments:
// moveArgs, then d.WriteMark's, then the job's ID, From and Attempt.
func moveSQL(d Dialect) string {
	return `UPDATE jobs SET
			state = ?,
			attempt = attempt + ?,
			restarts = restarts + ?,
			reason = COALESCE(?, reason),
			placement = COALESCE(?, CASE WHEN ? > 0 THEN NULL ELSE placement END),
			exit_code = COALESCE(?, exit_code),
			updated = ?,
			started = COALESCE(?, started),
			ended = COALESCE(?, ended),
			seq = seq + 1,
			written = ` + d.Written + `
		WHERE id = ? AND state = ? AND attempt = ?
		RETURNING ` + JobCols + `, seq`
}

// moveArgs are moveSQL's arguments for m up to the write mark;
// args[atArg] is the move's time (Unix nanoseconds).
const atArg = 7

func moveArgs(_ int64, m store.Move) ([]any, error) {
	c, err := m.Columns()
	if err != nil {
		return nil, err
	}
	return []any{string(m.To), c.AttemptInc, c.RestartInc, c.Reason, c.Placement, c.AttemptInc,
		c.ExitCode, c.At, c.Started, c.Ended}, nil
}

// MoveJob implements store.Store.
func (db *DB) MoveJob(ctx context.Context, id int64, m store.Move) (*store.Job, error) {
	js, errs, err := db.MoveJobs(ctx, []store.JobMove{{ID: id, Move: m}})
	if err != nil {
		return nil, err
	}
	return js[0], errs[0]
}

// MoveJobs implements store.Store: one transaction; for each move, the
// job's row, its event and its attempt (store.Attempt), and the usage
// record it carries.
func (db *DB) MoveJobs(ctx context.Context, moves []store.JobMove) ([]*store.Job, []error, error) {
	jobs := make([]*store.Job, len(moves))
	args, errs, ready := store.PrepareMoves(db.d.Name, moves, moveArgs)
	if ready == 0 {
		return jobs, errs, nil
	}
	fail := func(err error) ([]*store.Job, []error, error) {
		return nil, nil, db.errorf("move %d jobs: %w", len(moves), err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	var mark []any
	if db.d.WriteMark != nil {
		if mark, err = db.d.WriteMark(ctx, tx); err != nil {
			return fail(err)
		}
	}
	mv, ev := tx.StmtContext(ctx, db.moveJob), tx.StmtContext(ctx, db.insertEvent)
	for i, jm := range moves {
		if args[i] == nil {
			continue
		}
		id, m := jm.ID, jm.Move
		at := args[i][atArg].(int64)
		a := append(append(args[i], mark...), id, string(m.From), m.Attempt)
		var seq int64
		j, err := db.ScanJob(mv.QueryRowContext(ctx, a...), &seq)
		if errors.Is(err, store.ErrNotFound) {
			var st string
			var att int
			err := db.queryRow(ctx, tx, `SELECT state, attempt FROM jobs WHERE id = ?`, id).Scan(&st, &att)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				errs[i] = db.errorf("move job %d: %w", id, store.ErrNotFound)
			case err != nil:
				return fail(err)
			default:
				errs[i] = db.errorf("move job %d: %w: it is %s at attempt %d, not %s at attempt %d",
					id, store.ErrConflict, st, att, m.From, m.Attempt)
			}
			continue
		}
		if err != nil {
			return fail(err)
		}
		if _, err := ev.ExecContext(ctx, id, seq, at, m.Actor, string(m.From), string(m.To),
			j.Attempt, m.Message); err != nil {
			return fail(err)
		}
		if err := db.recordAttempt(ctx, tx, j, m, at); err != nil {
			return fail(err)
		}
		if m.Usage != nil {
			if err := db.insertUsage(ctx, tx, *m.Usage); err != nil {
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
