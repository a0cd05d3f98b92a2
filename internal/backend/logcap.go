package backend

import (
	"strconv"
)

// TruncatedNote starts the line a capped log ends with (see CapFilter):
// what a reader greps for to know the output goes on beyond the log.
const TruncatedNote = "[gpubroker] output truncated:"

// minNodeLog is the least a node's share of a log cap is rounded up to, so
// that a wide gang still keeps each node's first lines.
const minNodeLog = 64 << 10

// NodeLogCap is each node's share of spec.MaxLogBytes (at least 64 KiB,
// but never above the cap itself); 0 when there is no cap.
func NodeLogCap(spec Spec) int64 {
	if spec.MaxLogBytes <= 0 {
		return 0
	}
	n := int64(max(len(spec.Nodes), 1))
	return min(max(spec.MaxLogBytes/n, minNodeLog), spec.MaxLogBytes)
}

// CapFilter is a bash command for the end of a pipeline that copies its
// input to its output up to limit bytes (a line may be cut), then writes
// one line starting with TruncatedNote, and from then on reads and
// discards the rest: the job writing into the pipe never sees a broken
// pipe and runs on. It ignores SIGTERM, SIGINT and SIGHUP, so that a job
// stopping gracefully can still write while it does; SIGKILL ends it with
// the rest of the process group. It needs bash and GNU head (which reads
// no more than it writes, so the note appears exactly when more came),
// run unbuffered through coreutils' stdbuf: head -c writes through stdio,
// which holds a pipe's output until exit, and `logs -f` must see a line
// when the job prints it.
func CapFilter(limit int64) string {
	note := TruncatedNote + " this log reached its cap of " + sizeText(limit) +
		" (gpubroker server --max-log-size); the rest of the output was discarded while the job ran on"
	return "{ trap '' TERM INT HUP; stdbuf -o0 head -c " + strconv.FormatInt(limit, 10) +
		"; if IFS= read -r -n 1 x; then printf '\\n%s\\n' '" + note + "'; exec cat >/dev/null; fi; }"
}

// sizeText is n bytes in the largest binary unit that divides it, or in
// bytes.
func sizeText(n int64) string {
	for _, u := range []struct {
		div  int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.div && n%u.div == 0 {
			return strconv.FormatInt(n/u.div, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
