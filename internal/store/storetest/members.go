package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/store"
)

// testMembers checks a store.Members: a host is live while one of its
// brokers' beats is valid, beats renew, and beats do not take or block the
// reconciler's lease.
func testMembers(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	m, ok := s.(store.Members)
	if !ok {
		t.Skipf("%T does not implement store.Members", s)
	}
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	beat := func(id, host string, until int) {
		t.Helper()
		if err := m.Beat(ctx(t), id, host, sec(until)); err != nil {
			t.Fatalf("Beat(%s, %s): %v", id, host, err)
		}
	}
	live := func(now int, want ...string) {
		t.Helper()
		got, err := m.LiveHosts(ctx(t), sec(now))
		if err != nil {
			t.Fatalf("LiveHosts: %v", err)
		}
		w := map[string]bool{}
		for _, h := range want {
			w[h] = true
		}
		if d := cmp.Diff(w, got); d != "" {
			t.Errorf("LiveHosts at %d (-want +got):\n%s", now, d)
		}
	}
	live(0)
	beat("a", "host-1", 10)
	beat("b", "host-2", 5)
	beat("c", "host-2", 20)
	live(1, "host-1", "host-2")
	live(11, "host-2") // a's beat ran out; c still beats for host-2
	beat("a", "host-1", 30)
	live(25, "host-1")
	if err := m.Beat(ctx(t), "", "h", sec(1)); err == nil {
		t.Error("Beat with an empty id: no error")
	}
	if l, ok := s.(store.Leader); ok {
		if got, err := l.TryLead(ctx(t), "x", sec(0), sec(10)); !got || err != nil {
			t.Errorf("TryLead after beats = %v, %v; want the free lease", got, err)
		}
	}
}
