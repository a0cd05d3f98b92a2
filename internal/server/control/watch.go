package control

import (
	"sync"

	"gpubroker/internal/backend"
)

// watchers turns the Changes of every backend that is a backend.Watcher
// into one channel the reconciler waits on: one goroutine per watched
// channel forwards each signal to changed (coalesced: at most one waits).
// The backends come and go with the fleet (a cluster whose definition
// changes gets a new one); sync starts a forwarder for each new channel and
// stops those of channels no longer listed. Only the reconciler's
// goroutine calls sync and stopAll.
type watchers struct {
	changed chan struct{}
	// live holds the stop channel of each forwarder, by the channel it
	// watches (backends sharing one channel share a forwarder).
	live map[<-chan struct{}]chan struct{}
	wg   sync.WaitGroup
}

func newWatchers() *watchers {
	return &watchers{changed: make(chan struct{}, 1), live: map[<-chan struct{}]chan struct{}{}}
}

// sync watches the Changes of every Watcher among bs, and nothing else.
func (w *watchers) sync(bs []backend.Backend) {
	keep := make(map[<-chan struct{}]bool, len(bs))
	for _, b := range bs {
		bw, ok := b.(backend.Watcher)
		if !ok {
			continue
		}
		ch := bw.Changes()
		keep[ch] = true
		if _, ok := w.live[ch]; ok {
			continue
		}
		stop := make(chan struct{})
		w.live[ch] = stop
		w.wg.Add(1)
		go w.forward(ch, stop)
	}
	for ch, stop := range w.live {
		if !keep[ch] {
			close(stop)
			delete(w.live, ch)
		}
	}
}

func (w *watchers) forward(ch <-chan struct{}, stop chan struct{}) {
	defer w.wg.Done()
	for {
		select {
		case <-stop:
			return
		case <-ch:
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}
}

// stopAll stops every forwarder and waits for them to return.
func (w *watchers) stopAll() {
	w.sync(nil)
	w.wg.Wait()
}
