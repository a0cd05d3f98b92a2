package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"gpubroker/internal/store"
)

// BackfillAttempts is the Step that fills a new attempts table from the
// events of the jobs written before it: the one place left where event
// text is read as data. Admission events said where ("placed on
// CLUSTER/POOL ...") and, later, which GPUs ("gpu slots: 0=0,1 1=2,3");
// the wording is frozen here, and new events are never parsed.
func BackfillAttempts(ctx context.Context, tx *sql.Tx, d Dialect) error {
	rows, err := tx.QueryContext(ctx, `SELECT job_id, seq, at, actor, from_state, to_state, attempt, message
		FROM events ORDER BY job_id, seq`)
	if err != nil {
		return err
	}
	var all [][]store.Event
	for rows.Next() {
		var e store.Event
		var at int64
		var from, to string
		if err := rows.Scan(&e.JobID, &e.Seq, &at, &e.Actor, &from, &to, &e.Attempt, &e.Message); err != nil {
			rows.Close()
			return err
		}
		e.At, e.From, e.To = fromNanos(at), store.State(from), store.State(to)
		if n := len(all); n == 0 || all[n-1][0].JobID != e.JobID {
			all = append(all, nil)
		}
		all[len(all)-1] = append(all[len(all)-1], e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	ins, err := tx.PrepareContext(ctx, d.Bind(`INSERT INTO attempts (`+attemptCols+`, job_id, attempt)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, evs := range all {
		for _, a := range attemptsOf(evs) {
			r, err := rowOf(a)
			if err != nil {
				return err
			}
			if _, err := ins.ExecContext(ctx, attemptArgs(r, evs[0].JobID, a.Attempt)...); err != nil {
				return fmt.Errorf("attempt %d of job %d: %w", a.Attempt, evs[0].JobID, err)
			}
		}
	}
	return nil
}

// placedPrefix started the message of every admission.
const placedPrefix = "placed on "

// attemptsOf rebuilds a job's attempts from its events, oldest first, as
// the server did before the store kept them.
func attemptsOf(evs []store.Event) []store.Attempt {
	var out []store.Attempt
	cur := func() *store.Attempt { return &out[len(out)-1] }
	for _, e := range evs {
		if len(out) == 0 || e.Attempt > cur().Attempt {
			if len(out) > 0 {
				a := cur()
				a.Ended, a.Outcome, a.Reason = e.At, store.OutcomeRetried, e.Message
			}
			out = append(out, store.Attempt{JobID: e.JobID, Attempt: e.Attempt, State: store.Pending})
		}
		a := cur()
		switch {
		case e.To == store.Admitted:
			a.Admitted = e.At
			if rest, ok := strings.CutPrefix(e.Message, placedPrefix); ok {
				ref, _, _ := strings.Cut(rest, " ")
				a.Cluster, a.Pool, _ = strings.Cut(ref, "/")
			}
			a.Slots, _ = parseSlots(e.Message)
		case e.To == store.Running:
			a.Started = e.At
		case e.To.Terminal():
			a.Ended, a.Outcome, a.Reason = e.At, string(e.To), e.Message
		}
		if e.To != store.Pending || e.From == "" {
			a.State = e.To
		}
	}
	return out
}

// slotsMarker started the GPU slots at the end of an admission's message.
const slotsMarker = "gpu slots: "

// parseSlots reads the slots at the end of msg ("gpu slots: 0=0,1 1=0,1",
// node=indexes).
func parseSlots(msg string) ([]store.NodeSlots, bool) {
	i := strings.LastIndex(msg, slotsMarker)
	if i < 0 {
		return nil, false
	}
	var nodes []store.NodeSlots
	for _, f := range strings.Fields(msg[i+len(slotsMarker):]) {
		idx, gpus, ok := strings.Cut(f, "=")
		if !ok {
			return nil, false
		}
		n, err := strconv.Atoi(idx)
		if err != nil {
			return nil, false
		}
		node := store.NodeSlots{Node: n}
		for _, g := range strings.Split(gpus, ",") {
			v, err := strconv.Atoi(g)
			if err != nil {
				return nil, false
			}
			node.GPUs = append(node.GPUs, v)
		}
		nodes = append(nodes, node)
	}
	return nodes, len(nodes) > 0
}
