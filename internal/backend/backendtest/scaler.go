package backendtest

import (
	"context"
	"testing"
	"time"

	"gpubroker/internal/backend"
)

// RunScaler runs the tests of the optional backend.Scaler capability on
// opt.ScalePool, one after the other (they share the pool): Scale grows
// the pool to 2 nodes, converges (asked again until ready), answers a
// repeated call the same, runs a gang on the nodes it added, and shrinks
// the pool back to 1. Run calls it; a driver may call it alone. It skips
// when b is not a Scaler or opt.ScalePool is empty.
func RunScaler(t *testing.T, b backend.Backend, opt Options) {
	sc, ok := b.(backend.Scaler)
	if !ok {
		t.Skip("the backend is not a backend.Scaler")
	}
	if opt.ScalePool == "" {
		t.Skip("no elastic pool to scale (Options.ScalePool)")
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.Poll <= 0 {
		opt.Poll = 50 * time.Millisecond
	}
	if opt.JobIDBase == 0 {
		opt.JobIDBase = time.Now().UnixNano() / 1e3 % 1e12 * 1000
	}
	s := &suite{b: b, opt: opt}
	pool := opt.ScalePool
	s.scaleTo(t, sc, pool, 1)
	s.scaleTo(t, sc, pool, 2)
	if ready, err := sc.Scale(context.Background(), pool, 2); err != nil || ready != 2 {
		t.Fatalf("Scale(%s, 2) again = %d, %v; want 2, nil (Scale is level-triggered)", pool, ready, err)
	}
	if opt.MaxNodes >= 2 {
		spec := s.spec("echo scaled")
		spec.Pool = pool
		spec.Nodes = s.nodes(2) // the second is the node Scale added
		s.submit(t, spec)
		s.wait(t, spec.Name, backend.PhaseSucceeded)
	}
	s.scaleTo(t, sc, pool, 1)
}

// scaleTo asks for n nodes until the pool has them ready, checking every
// answer is sane on the way.
func (s *suite) scaleTo(t *testing.T, sc backend.Scaler, pool string, n int) {
	t.Helper()
	deadline := time.Now().Add(s.opt.Timeout)
	for {
		ready, err := sc.Scale(context.Background(), pool, n)
		if err != nil {
			t.Fatalf("Scale(%s, %d): %v", pool, n, err)
		}
		if ready < 0 {
			t.Fatalf("Scale(%s, %d) = %d ready nodes", pool, n, ready)
		}
		if ready == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Scale(%s, %d): %d ready after %v", pool, n, ready, s.opt.Timeout)
		}
		time.Sleep(s.opt.Poll)
	}
}
