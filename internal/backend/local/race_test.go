package local

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gpubroker/internal/backend"
)

// TestObserveDuringSubmit: an Observe racing Submits never reports an
// attempt that is still being started as Lost.
func TestObserveDuringSubmit(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			all, _ := b.Observe(context.Background())
			for _, st := range all {
				if st.Phase == backend.PhaseLost {
					ents, _ := os.ReadDir(filepath.Join(dir, st.Name))
					var names []string
					for _, e := range ents {
						names = append(names, e.Name())
					}
					log, _ := os.ReadFile(filepath.Join(dir, st.Name, "node-0.log"))
					t.Errorf("%s lost: %s; files %v; log %q", st.Name, st.Message, names, log)
					close(stop)
					return
				}
			}
		}
	})
	for i := range 150 {
		wg.Go(func() {
			_ = b.Submit(context.Background(), spec(int64(i), "sleep 0.3"))
		})
		time.Sleep(3 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	select {
	case <-stop:
	default:
		close(stop)
	}
	wg.Wait()
}
