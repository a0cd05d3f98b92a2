package backendtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"gpubroker/internal/backend"
)

// The log cap (Spec.MaxLogBytes) and tail (backend.LogTailer) tests.

// capRun writes 3,000 lines of 101 bytes from bash itself, then a marker
// to stderr, and exits 3: a broken pipe at the cap would end bash with
// SIGPIPE (141) instead.
const capRun = `for ((i = 1; i <= 3000; i++)); do printf '%0100d\n' "$i"; done; echo after-the-cap >&2; exit 3`

// testLogCap: past a 64 KiB cap the log keeps its head, ends with the
// truncation note, and the job runs on to its own exit code.
func (s *suite) testLogCap(t *testing.T) {
	if !s.opt.LogCap {
		t.Skip("the driver does not store its logs (Options.LogCap)")
	}
	const limit = 64 << 10
	spec := s.spec(capRun)
	spec.MaxLogBytes = limit
	s.submit(t, spec)
	st := s.wait(t, spec.Name, backend.PhaseFailed)
	if st.ExitCode == nil || *st.ExitCode != 3 {
		t.Errorf("ExitCode = %v, want 3 (the job must run on past the cap, not die of a broken pipe)", fmtCode(st.ExitCode))
	}
	logs := s.logs(t, spec.Name)
	head := fmt.Sprintf("%0100d\n%0100d\n", 1, 2)
	if !strings.HasPrefix(logs, head) {
		t.Errorf("the capped log does not start with the job's first lines: %.120q", logs)
	}
	i := strings.Index(logs, backend.TruncatedNote)
	if i < 0 {
		t.Fatalf("no truncation note in a log written past its cap; %d bytes, ending %q", len(logs), logs[max(0, len(logs)-200):])
	}
	if i > limit+1 || len(logs) > limit+400 {
		t.Errorf("note at byte %d, log %d bytes; want the note right after the first %d bytes", i, len(logs), limit)
	}
	if strings.Contains(logs, "after-the-cap") {
		t.Errorf("output after the cap was stored")
	}
}

// testLogTail: TailLogs gives the last lines, also of a log that does not
// end in a newline, and ErrNotFound for a name never submitted.
func (s *suite) testLogTail(t *testing.T) {
	lt, ok := s.b.(backend.LogTailer)
	if !ok {
		t.Skip("the driver is not a backend.LogTailer")
	}
	spec := s.spec(`for i in $(seq 1 5000); do echo "line $i"; done; printf 'no newline'`)
	s.submit(t, spec)
	s.wait(t, spec.Name, backend.PhaseSucceeded)
	got, err := lt.TailLogs(context.Background(), spec.Name, 3, 1<<20)
	if err != nil {
		t.Fatalf("TailLogs: %v", err)
	}
	if want := "line 4999\nline 5000\nno newline\n"; !strings.HasSuffix(string(got), want) || strings.Count(string(got), "\n") != 3 {
		t.Errorf("TailLogs(3 lines) = %q, want %q", got, want)
	}
	if _, err := lt.TailLogs(context.Background(), s.spec("").Name, 3, 1<<20); err == nil {
		t.Errorf("TailLogs of a name never submitted: nil error, want ErrNotFound")
	}
}
