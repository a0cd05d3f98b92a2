package backend

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// naiveTail is tailOf's reference: the whole input split into lines.
func naiveTail(data []byte, lines int, maxBytes int64) []byte {
	if lines <= 0 || len(data) == 0 {
		return nil
	}
	lo := max(0, int64(len(data))-maxBytes)
	win := data[lo:]
	if lo > 0 && data[lo-1] != '\n' {
		// Drop the line cut at lo, unless it is the only one.
		if i := bytes.IndexByte(win[:len(win)-1], '\n'); i >= 0 {
			win = win[i+1:]
		}
	}
	body := strings.TrimSuffix(string(win), "\n")
	parts := strings.Split(body, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	out := strings.Join(parts, "\n")
	if bytes.HasSuffix(win, []byte("\n")) {
		out += "\n"
	}
	return []byte(out)
}

func TestTailOf(t *testing.T) {
	for name, tc := range map[string]struct {
		data  string
		lines int
		max   int64
		want  string
	}{
		"last two":            {"a\nb\nc\n", 2, 100, "b\nc\n"},
		"no final newline":    {"a\nb\nc", 2, 100, "b\nc"},
		"more than there are": {"a\nb\n", 5, 100, "a\nb\n"},
		"empty lines count":   {"a\n\n\n", 2, 100, "\n\n"},
		"cut line dropped":    {"aaaa\nbb\ncc\n", 10, 5, "cc\n"},
		"whole line kept":     {"aaaa\nbb\ncc\n", 10, 6, "bb\ncc\n"},
		"one long line":       {strings.Repeat("x", 50) + "\n", 3, 10, "xxxxxxxxx\n"},
		"empty":               {"", 3, 10, ""},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tailOf(strings.NewReader(tc.data), int64(len(tc.data)), tc.lines, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("tailOf(%q, %d, %d) = %q, want %q", tc.data, tc.lines, tc.max, got, tc.want)
			}
		})
	}
}

// TestTailOfMatchesNaive checks the block-wise walk back against the
// split of the whole input, on random logs spanning several blocks.
func TestTailOfMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		var sb strings.Builder
		for sb.Len() < rng.IntN(4*tailBlock) {
			sb.WriteString(strings.Repeat("y", rng.IntN(3000)))
			sb.WriteByte('\n')
		}
		if rng.IntN(2) == 0 {
			sb.WriteString("partial")
		}
		data := sb.String()
		lines, maxBytes := 1+rng.IntN(40), int64(1+rng.IntN(3*tailBlock))
		got, err := tailOf(strings.NewReader(data), int64(len(data)), lines, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if want := naiveTail([]byte(data), lines, maxBytes); !bytes.Equal(got, want) {
			t.Fatalf("case %d (%d bytes, %d lines, max %d): got %d bytes, want %d", i, len(data), lines, maxBytes, len(got), len(want))
		}
		// A stream keeps its last maxBytes, the first of them standing
		// for the byte before the window.
		got, err = TailReader(iotest.OneByteReader(strings.NewReader(data)), lines, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		window := maxBytes
		if int64(len(data)) > maxBytes {
			window--
		}
		if want := naiveTail([]byte(data), lines, window); !bytes.Equal(got, want) {
			t.Fatalf("TailReader case %d (%d bytes, %d lines, max %d): got %d bytes, want %d", i, len(data), lines, maxBytes, len(got), len(want))
		}
	}
}

func TestTailLinesPrefixesAndSkipsMissing(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "node-0.log"), []byte("a\nb\nc"), 0o644)
	os.WriteFile(filepath.Join(dir, "node-1.log"), []byte("d\ne\n"), 0o644)
	got, err := TailLines([]LogFile{
		{Path: filepath.Join(dir, "node-0.log"), Prefix: "[rank 0] "},
		{Path: filepath.Join(dir, "node-1.log"), Prefix: "[rank 1] "},
		{Path: filepath.Join(dir, "node-2.log")},
		{Glob: filepath.Join(dir, "slurm-*.out")},
	}, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[rank 0] b\n[rank 0] c\n[rank 1] d\n[rank 1] e\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// benchLine is each line of benchLog.
var benchLine = strings.Repeat("z", 99) + "\n"

// benchLog writes a 64 MiB log of 100-byte lines.
func benchLog(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "node-0.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	chunk := []byte(strings.Repeat(benchLine, 10_000))
	for range 64 << 20 / len(chunk) {
		f.Write(chunk)
	}
	f.Close()
	return path
}

// BenchmarkTailLines reads the last 200 lines of a 64 MiB log (the
// dashboard's view): bytes allocated per tail stay those of the tail, not
// the file's (docs/benchmarks.md).
func BenchmarkTailLines(b *testing.B) {
	files := []LogFile{{Path: benchLog(b)}}
	b.ReportAllocs()
	for b.Loop() {
		out, err := TailLines(files, 200, 1<<20)
		if err != nil || len(out) != 200*len(benchLine) {
			b.Fatalf("%d bytes, %v", len(out), err)
		}
	}
}

// BenchmarkTailWholeFile is the same tail taken as the dashboard took it
// before: the whole log read, then cut (the baseline of
// BenchmarkTailLines).
func BenchmarkTailWholeFile(b *testing.B) {
	path := benchLog(b)
	b.ReportAllocs()
	for b.Loop() {
		data, err := io.ReadAll(TailFiles(context.Background(), []LogFile{{Path: path}}, false, nil, 0, 0))
		if err != nil {
			b.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines[len(lines)-200:]) != 200 {
			b.Fatal("short")
		}
	}
}
