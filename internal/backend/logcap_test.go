package backend

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The cap filter passes each line on when it comes, not when the job
// ends: the producer waits, after its first line, until the test has seen
// that line in the log.
func TestCapFilterStreams(t *testing.T) {
	dir := t.TempDir()
	out, flag := filepath.Join(dir, "log"), filepath.Join(dir, "seen")
	script := `{ echo ready; while [ ! -e "$1" ]; do sleep 0.01; done; echo done; } | ` + CapFilter(1<<20) + ` > "$2"`
	cmd := exec.Command("bash", "-c", script, "filter", flag, out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// On failure, release the producer so that nothing is left behind.
	defer os.WriteFile(flag, nil, 0o600)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if strings.Contains(string(b), "ready\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the filter held the job's first line for 20 s (log %q): output is buffered", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "ready\ndone\n" {
		t.Errorf("log %q; want both lines, uncut", b)
	}
}

// Past the cap the log ends with the note and the producer runs on to
// its end (no broken pipe).
func TestCapFilterCuts(t *testing.T) {
	out := filepath.Join(t.TempDir(), "log")
	script := `{ printf 'abcdefghij'; printf 'klm'; echo end >&2; exit 0; } | ` + CapFilter(10) + ` > "$1"; echo "${PIPESTATUS[0]}"`
	res, err := exec.Command("bash", "-c", script, "filter", out).CombinedOutput()
	if err != nil {
		t.Fatal(err, string(res))
	}
	if got := strings.TrimSpace(string(res)); got != "end\n0" && got != "end\r\n0" && !strings.HasSuffix(got, "0") {
		t.Errorf("producer: %q; want it to end with 0", got)
	}
	b, _ := os.ReadFile(out)
	if !strings.HasPrefix(string(b), "abcdefghij\n"+TruncatedNote) {
		t.Errorf("log %q; want the first 10 bytes then the note", b)
	}
}
