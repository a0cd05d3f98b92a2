package backend

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTailPrefixLongLine(t *testing.T) {
	var sb strings.Builder
	tl := &tail{prefix: []byte("[rank 1] ")}
	if err := tl.emit(&sb, []byte("a\nb")); err != nil {
		t.Fatal(err)
	}
	if err := tl.emit(&sb, []byte("c\n"+strings.Repeat("x", maxLine+1))); err != nil {
		t.Fatal(err)
	}
	want := "[rank 1] a\n[rank 1] bc\n[rank 1] " + strings.Repeat("x", maxLine+1) + "\n"
	if sb.String() != want {
		t.Errorf("got %q...", sb.String()[:40])
	}
}

// TestTailFilesFollowsUntilEnded: files read in order, a file created late
// is picked up by its glob, and following stops once ended and drained.
func TestTailFilesFollowsUntilEnded(t *testing.T) {
	dir := t.TempDir()
	node := filepath.Join(dir, "node-0.log")
	if err := os.WriteFile(node, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	ended := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	r := TailFiles(context.Background(), []LogFile{{Path: node}, {Glob: filepath.Join(dir, "batch-*.out"), Prefix: "[b] "}},
		true, ended, time.Millisecond, time.Millisecond)
	defer r.Close()
	go func() {
		time.Sleep(20 * time.Millisecond)
		f, _ := os.OpenFile(node, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("two\n")
		f.Close()
		os.WriteFile(filepath.Join(dir, "batch-1.out"), []byte("late"), 0o644)
		time.Sleep(20 * time.Millisecond)
		close(done)
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "one\ntwo\n[b] late\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
