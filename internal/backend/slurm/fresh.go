package slurm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errNoAnswer is what get returns when its caller gave up waiting.
var errNoAnswer = errors.New("no answer yet")

// fresh keeps one answer from slurmctld (a listing of the jobs, a health
// check) fresh without holding up its callers. An answer younger than
// every is returned as it is. An older one is asked for again in the
// background, one call at a time, while callers still get it, unless that
// call has run for hangAfter periods: then, as when there is no good
// answer (none yet, or the last call failed), a caller waits for the call
// in flight, within its context.
//
// On a busy controller each squeue, `scontrol ping` or sinfo takes one to
// two seconds; made inside the broker's round, they held the round (and
// the next admissions) whenever they fell due. A controller that dies is
// still seen: its failure is the next answer, and a call it leaves hanging
// is waited for after hangAfter periods.
type fresh[T any] struct {
	mu  sync.Mutex
	val T
	err error
	at  time.Time // when the call that gave val and err began
	// hasVal: a call has answered without error (val is its answer).
	hasVal bool
	// running is closed when the call in flight returns; nil when none
	// is. started is when that call began.
	running chan struct{}
	started time.Time
}

// hangAfter is how many periods a call in flight may run before callers
// stop taking the last answer and wait for it: squeue took 0.5-5 s on the
// benchmark's controller (load 18-31 on two cores), and a call to a dead
// controller may hang for its MessageTimeout (10 s by default).
const hangAfter = 4

// get returns the answer at now (see fresh), calling call for a new one
// when it is due.
func (f *fresh[T]) get(ctx context.Context, now time.Time, every time.Duration, call func(context.Context) (T, error)) (T, error) {
	f.mu.Lock()
	age := now.Sub(f.at)
	good := f.hasVal && f.err == nil && age >= 0
	if good && age < every {
		v := f.val
		f.mu.Unlock()
		return v, nil
	}
	done := f.running
	if done == nil {
		done = make(chan struct{})
		f.running, f.started = done, now
		// The call outlives the caller's context: a caller that gives up
		// leaves it to the next one. Each command has its own timeout
		// (Options.CommandTimeout).
		go f.call(now, done, call)
	}
	if running := now.Sub(f.started); good && running >= 0 && running < hangAfter*every {
		v := f.val
		f.mu.Unlock()
		return v, nil
	}
	f.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w: %w", errNoAnswer, ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		var zero T
		return zero, f.err
	}
	return f.val, nil
}

// last returns the last good answer, however old; ok is false when there
// has been none.
func (f *fresh[T]) last() (v T, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.val, f.hasVal
}

func (f *fresh[T]) call(at time.Time, done chan struct{}, call func(context.Context) (T, error)) {
	v, err := call(context.Background())
	f.mu.Lock()
	if err == nil {
		f.val, f.hasVal = v, true
	}
	f.err, f.at = err, at
	f.running = nil
	f.mu.Unlock()
	close(done)
}
