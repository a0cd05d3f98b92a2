package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// writableStore is a store that can tell whether it takes writes now
// (the SQL stores: sqlstore.DB.CheckWritable).
type writableStore interface {
	CheckWritable(ctx context.Context) error
}

// healthOK is how long a good store check answers /healthz before the
// next one, so a load balancer polling often does not queue behind the
// writer. A failed check is not remembered: the next request checks
// again.
const healthOK = time.Second

// health remembers the last good store check.
type health struct {
	mu   sync.Mutex
	good time.Time
}

// handleHealthz answers 200 "ok" while the store takes writes and 503
// with the store's error when it does not (a read-only or full database
// file, a PostgreSQL that refuses writes or connections): a load balancer
// or supervisor must not send work to a broker that cannot record it.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.checkStore(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("store not writable: " + err.Error() + "\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

func (s *Server) checkStore(ctx context.Context) error {
	ws, ok := s.store.(writableStore)
	if !ok {
		return nil
	}
	now := s.now()
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	if !s.health.good.IsZero() && now.Sub(s.health.good) >= 0 && now.Sub(s.health.good) < healthOK {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ws.CheckWritable(ctx); err != nil {
		s.health.good = time.Time{}
		return err
	}
	s.health.good = now
	return nil
}
