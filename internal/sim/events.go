package sim

type evKind uint8

const (
	evArrival evKind = iota
	evRound
	evComplete
	evSpot
	evOutageStart
	evOutageEnd
	// evFail ends an attempt with an error (Config.Failures).
	evFail
)

// event is one thing that happens at a simulated instant (ns since the
// Unix epoch). id is a job index or an outage index.
type event struct {
	at      int64
	seq     uint64
	kind    evKind
	id      int32
	attempt int32
}

func (a *event) before(b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

// eventHeap is a binary min-heap ordered by (at, seq). Written out rather
// than through container/heap to keep events unboxed.
type eventHeap struct{ h []event }

func (q *eventHeap) len() int    { return len(q.h) }
func (q *eventHeap) top() *event { return &q.h[0] }

func (q *eventHeap) push(e event) {
	q.h = append(q.h, e)
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.h[i].before(&q.h[p]) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *eventHeap) pop() event {
	top := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	q.h = q.h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.h[r].before(&q.h[l]) {
			m = r
		}
		if !q.h[m].before(&q.h[i]) {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}
