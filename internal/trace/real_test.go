package trace

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tracesDir is shared/data/traces beside the repository.
var tracesDir = filepath.Join("..", "..", "..", "shared", "data", "traces")

func needTrace(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(tracesDir, rel)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("real trace %s not present (%v); it lives in shared/data/traces beside the repo", p, err)
	}
	return p
}

// TestRealTraces reads every full trace and checks the counts stated in
// the traces' READMEs: produced + malformed = rows, every workload valid,
// sorted, with unique IDs.
func TestRealTraces(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec      string
		kind      Kind
		rows      int
		malformed map[string]int
	}{
		{spec: "philly", kind: Philly, rows: 82247},
		{spec: "philly/philly_jobs.csv", kind: Philly, rows: 82247},
		{spec: "microsoft-itp", kind: ITP, rows: 69351},
		{spec: "microsoft-itp/raw", kind: ITP, rows: 69351},
		{spec: "microsoft-itp/elasticflow-augmented", kind: ITPDeadline, rows: 69351},
		{spec: "microsoft-itp/elasticflow-augmented/195job.csv", kind: ITPDeadline, rows: 195},
		{spec: "alibaba-gpu-2023-fgd", kind: Openb, rows: 8152, malformed: map[string]int{ReasonNoGPU: 1088}},
		{spec: "alibaba-gpu-2023-fgd/openb_pod_list_gpuspec33.csv", kind: Openb, rows: 8152},
		{spec: "alibaba-gpu-2023-fgd/openb_pod_list_gpushare40.csv", kind: Openb, rows: 8152},
		{spec: "alibaba-gpu-2023-fgd/openb_pod_list_multigpu50.csv", kind: Openb, rows: 9061},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			p := needTrace(t, tc.spec)
			res, err := Open(p, Options{Start: start})
			if err != nil {
				t.Fatal(err)
			}
			if res.Kind != tc.kind {
				t.Errorf("kind %q, want %q", res.Kind, tc.kind)
			}
			if res.Rows != tc.rows {
				t.Errorf("rows %d, want %d", res.Rows, tc.rows)
			}
			if got := len(res.Workloads) + len(res.Malformed); got != tc.rows {
				t.Errorf("produced %d + malformed %d = %d, want %d rows", len(res.Workloads), len(res.Malformed), got, tc.rows)
			}
			if tc.malformed != nil {
				got := res.MalformedByReason()
				for reason, n := range tc.malformed {
					if got[reason] != n {
						t.Errorf("malformed %q: %d, want %d (all: %v)", reason, got[reason], n, got)
					}
				}
			} else if tc.kind != Openb && len(res.Malformed) != 0 {
				t.Errorf("%d malformed rows, want 0; first: %v", len(res.Malformed), res.Malformed[0])
			}
			checkResult(t, res)
			if !res.Workloads[0].Submitted.Equal(start) && tc.kind == Philly {
				t.Errorf("first Philly job at %v, want Start %v", res.Workloads[0].Submitted, start)
			}
			t.Logf("%s: %d workloads, malformed %v, notes %q", tc.spec, len(res.Workloads), res.MalformedByReason(), res.Notes)
		})
	}
}

// TestRealITPPerCluster checks the per-cluster job counts of the ITP README.
func TestRealITPPerCluster(t *testing.T) {
	want := map[string]int{
		"itp-cluster01": 1595, "itp-cluster02": 5778, "itp-cluster03": 3011, "itp-cluster04": 15802,
		"itp-cluster05": 3629, "itp-cluster06": 2396, "itp-cluster07": 12699, "itp-cluster08": 13047,
		"itp-cluster09": 11134, "itp-cluster10": 260,
	}
	res, err := Open(string(ITP)+":"+needTrace(t, "microsoft-itp"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	maxGPUs := map[string]int{}
	for _, w := range res.Workloads {
		got[w.Team]++
		maxGPUs[w.Team] = max(maxGPUs[w.Team], w.GPUs(0))
	}
	for team, n := range want {
		if got[team] != n {
			t.Errorf("%s: %d jobs, want %d", team, got[team], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("teams %v, want %v", got, want)
	}
	// README: cluster05 at most 8 GPUs/job, cluster09 only 1.
	if maxGPUs["itp-cluster05"] != 8 || maxGPUs["itp-cluster09"] != 1 || maxGPUs["itp-cluster04"] != 64 {
		t.Errorf("max GPUs per job %v", maxGPUs)
	}
}

// TestRealPhillyShape checks the Philly GPU-count histogram of the README
// survives the mapping to nodes x GPUs per node.
func TestRealPhillyShape(t *testing.T) {
	res, err := Open(needTrace(t, "philly"), Options{GPUsPerNode: 8})
	if err != nil {
		t.Fatal(err)
	}
	hist := map[int]int{}
	teams := map[string]int{}
	for _, w := range res.Workloads {
		hist[w.GPUs(0)]++
		teams[w.Team]++
	}
	// 12-GPU jobs (7) become 2 x 8; 24 (7) is 3 x 8 exactly.
	for n, want := range map[int]int{1: 76627, 2: 1818, 4: 1870, 8: 1643, 16: 199 + 7, 24: 7, 32: 67, 64: 6, 128: 3} {
		if hist[n] != want {
			t.Errorf("%d-GPU workloads: %d, want %d", n, hist[n], want)
		}
	}
	if len(teams) != 15 || teams["philly-6214e9"] != 41226 || teams["philly-11cb48"] != 16091 {
		t.Errorf("teams %v", teams)
	}
	first, last := res.Workloads[0].Submitted, res.Workloads[len(res.Workloads)-1].Submitted
	if first.Format("2006-01-02") != "2017-09-04" || last.Format("2006-01-02") != "2017-12-22" {
		t.Errorf("span %v .. %v, want 2017-09-04 .. 2017-12-22", first, last)
	}
}

func BenchmarkReadPhilly(b *testing.B)      { benchOpen(b, "philly") }
func BenchmarkReadITP(b *testing.B)         { benchOpen(b, "microsoft-itp") }
func BenchmarkReadITPDeadline(b *testing.B) { benchOpen(b, "microsoft-itp/elasticflow-augmented") }
func BenchmarkReadOpenb(b *testing.B)       { benchOpen(b, "alibaba-gpu-2023-fgd") }

func benchOpen(b *testing.B, rel string) {
	p := needTrace(b, rel)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(p, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
