package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"gpubroker/internal/backend"
	"gpubroker/internal/server/view"
)

// Deadlines bound the controller's calls to backends. A call past its
// deadline is given up (its context is cancelled; the Slurm driver kills
// its commands) and, for health and observation, the cluster is unhealthy
// with "health check timed out after 10s" until a check answers.
type Deadlines struct {
	// Health bounds a cluster's health check (backend.Health); default
	// DefaultHealthDeadline.
	Health time.Duration
	// Observe bounds a cluster's Observe; default DefaultObserveDeadline.
	Observe time.Duration
	// Call bounds every other call: Submit, Cancel, Forget, Scale and
	// opening an attempt's logs (not reading them); default
	// DefaultCallDeadline.
	Call time.Duration
}

// Defaults of Deadlines.
const (
	DefaultHealthDeadline  = 10 * time.Second
	DefaultObserveDeadline = 10 * time.Second
	// DefaultCallDeadline is long: an sbatch on a busy controller takes
	// seconds, and a Submit given up may have gone through (dispatch is
	// idempotent by name, so the next round finds it).
	DefaultCallDeadline = 60 * time.Second
)

func (d Deadlines) withDefaults() Deadlines {
	if d.Health <= 0 {
		d.Health = DefaultHealthDeadline
	}
	if d.Observe <= 0 {
		d.Observe = DefaultObserveDeadline
	}
	if d.Call <= 0 {
		d.Call = DefaultCallDeadline
	}
	return d
}

// probeWait is the longest a round waits for the health checks and
// observations it starts; a cluster whose check takes longer is left to
// answer in the background (the round uses its last answer), and the
// rounds after do not wait for it at all until a check of it answers
// within probeWait again. A hung cluster so delays one round by probeWait
// at most, when it starts hanging, and no round after.
const probeWait = time.Second

// Cluster health states (view.StateHealthy, ...).
const (
	StateUnknown   = view.StateUnknown
	StateHealthy   = view.StateHealthy
	StateClosed    = view.StateClosed
	StateUnhealthy = view.StateUnhealthy
)

// answerGrace is how long bounded waits past a deadline for the call to
// return what it has to say (a killed command's stderr, say).
const answerGrace = 250 * time.Millisecond

// errChecking is an unknown cluster's reason.
var errChecking = errors.New("waiting for the first health check")

// maxReason bounds the reason a cluster's state carries (an engine's
// stderr may run long).
const maxReason = 500

// probe runs one cluster's health check and observation off the round's
// goroutine, one at a time, and keeps the last answer. A new backend for
// the cluster (its definition changed) gets a new probe.
type probe struct {
	b backend.Backend

	mu sync.Mutex
	// running is closed when the check in flight has returned (its calls
	// included, even past their deadlines); nil when none runs.
	running chan struct{}
	// last is the last answer; nil until the first.
	last *observation
	// slow: the last check took longer than probeWait, so rounds do not
	// wait for the next one.
	slow bool
	// used is the answer the last round used (see fresh).
	used *observation
}

// probes holds every observed cluster's probe, for the reconciler's
// goroutine; probe goroutines lock each probe, not this.
type probes struct {
	by map[string]*probe
	wg sync.WaitGroup
}

// start runs a check of p's cluster unless one is in flight, and says
// whether the round should wait for it (done is closed when it returns).
func (s *Controller) startProbe(ctx context.Context, p *probe, roundAt time.Time) (done chan struct{}, wait bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running != nil {
		return nil, false
	}
	done = make(chan struct{})
	p.running = done
	slow := p.slow
	s.probes.wg.Add(1)
	go func() {
		defer s.probes.wg.Done()
		started := s.clock.Now()
		s.checkCluster(ctx, p.b, roundAt, p.answer)
		took := s.clock.Now().Sub(started)
		p.mu.Lock()
		p.slow = took > probeWait
		p.running = nil
		p.mu.Unlock()
		close(done)
		if took > probeWait && ctx.Err() == nil {
			s.kick() // an answer no round waited for: take it up
		}
	}()
	return done, !slow
}

// answer records o as p's last answer.
func (p *probe) answer(o *observation) {
	p.mu.Lock()
	p.last = o
	p.mu.Unlock()
}

// result is what a round knows of p's cluster: its last answer (fresh
// when no round used it before), or an unknown cluster's.
func (p *probe) result() *observation {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return &observation{b: p.b, err: errChecking, unknown: true}
	}
	o := *p.last
	o.fresh = p.used != p.last
	p.used = p.last
	return &o
}

// checkCluster checks b's health, then observes it, each within its
// deadline, and returns what it saw. A call past its deadline is given up:
// answer gets the observation at once (the cluster timed out), while
// checkCluster waits for the call itself to return before it does, so
// that the next check never runs beside a call still hanging.
func (s *Controller) checkCluster(ctx context.Context, b backend.Backend, roundAt time.Time, answer func(*observation)) *observation {
	o := &observation{b: b, round: roundAt}
	settle := func(finished <-chan struct{}) *observation {
		o.checked = s.clock.Now()
		answer(o)
		select {
		case <-finished:
		case <-ctx.Done():
		}
		return o
	}
	if h, ok := b.(backend.Health); ok {
		finished, err := bounded(ctx, s.deadlines.Health, "health check", h.Health)
		if errors.Is(err, backend.ErrNoNewWork) {
			o.closed = err
		} else if err != nil {
			o.err = err
			return settle(finished)
		}
	}
	var sts []backend.Status
	finished, err := bounded(ctx, s.deadlines.Observe, "observe", func(ctx context.Context) error {
		var err error
		sts, err = b.Observe(ctx)
		return err
	})
	if err != nil {
		o.err = err
		return settle(finished)
	}
	o.byName = make(map[string]backend.Status, len(sts))
	for _, st := range sts {
		o.byName[st.Name] = st
	}
	return settle(finished)
}

// bounded runs call with a context that ends after d and returns its
// error, or, when d passes first and the call has not returned
// answerGrace later, an error "WHAT timed out after D"
// (wrapping backend.ErrUnavailable and context.DeadlineExceeded).
// finished is closed when call has returned, which a call that ignores
// its context may do much later. An error that is not a timeout is
// returned as "WHAT: ERR".
func bounded(ctx context.Context, d time.Duration, what string, call func(context.Context) error) (<-chan struct{}, error) {
	cctx, cancel := context.WithTimeout(ctx, d)
	finished := make(chan struct{})
	var err error
	go func() {
		defer cancel() // after finished is closed: a cancelled cctx means either
		defer close(finished)
		err = call(cctx)
	}()
	select {
	case <-finished:
	case <-cctx.Done():
		// A call that heeds its context returns at once, maybe with
		// words of its own: give it a moment.
		gctx, gcancel := context.WithTimeout(ctx, answerGrace)
		select {
		case <-finished:
		case <-gctx.Done():
		}
		gcancel()
	}
	select {
	case <-finished:
	default:
		if ctx.Err() != nil {
			return finished, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return finished, timedOut(what, d)
	}
	switch {
	case err == nil:
		return finished, nil
	case ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) &&
		!strings.Contains(err.Error(), "timed out after"):
		// The call gave up at the deadline; unless it says so itself, with
		// its own, shorter deadline ("scontrol ping: timed out after 5s"),
		// say that first, then what it said.
		if err.Error() == context.DeadlineExceeded.Error() {
			return finished, timedOut(what, d)
		}
		return finished, &timeoutError{msg: fmt.Sprintf("%s timed out after %s: %v", what, d, err)}
	}
	return finished, fmt.Errorf("%s: %w", what, err)
}

func timedOut(what string, d time.Duration) error {
	return &timeoutError{msg: fmt.Sprintf("%s timed out after %s", what, d)}
}

// timeoutError is a backend call given up at its deadline: the backend
// is unavailable (backend.ErrUnavailable), and the call's context ended
// (context.DeadlineExceeded).
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }

func (e *timeoutError) Is(target error) bool {
	return target == backend.ErrUnavailable || target == context.DeadlineExceeded
}

// within runs one backend call that is not a check (Submit, Cancel,
// Forget, Scale) under the call deadline and returns its error as it is,
// or, once the deadline passed, "WHAT timed out after D" (wrapping
// backend.ErrUnavailable: retry later). The caller waits for the deadline
// at most, never for a call that ignores it.
func (s *Controller) within(ctx context.Context, what string, call func(context.Context) error) error {
	d := s.deadlines.Call
	cctx, cancel := context.WithTimeout(ctx, d)
	done := make(chan error, 1)
	go func() {
		done <- call(cctx)
		cancel() // after the answer is sent: a cancelled cctx means it is there
	}()
	answered := func(err error) error {
		if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return &timeoutError{msg: fmt.Sprintf("%s timed out after %s: %v", what, d, err)}
		}
		return err
	}
	select {
	case err := <-done:
		return answered(err)
	case <-cctx.Done():
	}
	select {
	case err := <-done:
		return answered(err)
	default:
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return timedOut(what, d)
}

// reason is a cluster's reason for the API: one line, bounded.
func reason(err error) string {
	if err == nil {
		return ""
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > maxReason {
		msg = msg[:maxReason] + "..."
	}
	return msg
}
