package trace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzRead feeds arbitrary bytes to one reader: it must not panic, and what
// it returns must keep the Result invariants.
func fuzzRead(f *testing.F, kind Kind, fixture string, real string) {
	if b, err := os.ReadFile(filepath.Join("testdata", fixture)); err == nil {
		f.Add(b)
	}
	if b, err := os.ReadFile(filepath.Join(tracesDir, real)); err == nil {
		f.Add(b[:min(len(b), 4096)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Read(kind, strings.NewReader(string(data)), Options{Start: time.Unix(1e9, 0)})
		if err != nil {
			return
		}
		if len(res.Workloads)+len(res.Malformed) != res.Rows {
			t.Fatalf("produced %d + malformed %d != rows %d", len(res.Workloads), len(res.Malformed), res.Rows)
		}
		checkResult(t, res)
	})
}

func FuzzReadPhilly(f *testing.F) { fuzzRead(f, Philly, "philly.csv", "philly/philly_jobs.csv") }
func FuzzReadITP(f *testing.F)    { fuzzRead(f, ITP, "itp.csv", "microsoft-itp/raw/cluster01.csv") }
func FuzzReadITPDeadline(f *testing.F) {
	fuzzRead(f, ITPDeadline, "itp_deadline.csv", "microsoft-itp/elasticflow-augmented/cluster01.csv")
}
func FuzzReadOpenb(f *testing.F) {
	fuzzRead(f, Openb, "openb.csv", "alibaba-gpu-2023-fgd/openb_pod_list_gpuspec33.csv")
}

func FuzzDetect(f *testing.F) {
	f.Add("x.csv", []byte("timestamp,duration,num_gpus,gpu_time,cluster\n"))
	f.Fuzz(func(t *testing.T, path string, head []byte) {
		k, err := Detect(path, head)
		if err == nil && !k.Valid() {
			t.Fatalf("Detect returned invalid kind %q", k)
		}
	})
}
