package trace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

// got is the part of a workload the fixtures check.
type got struct {
	ID       string
	Team     string
	Priority int
	Nodes    int
	PerNode  int
	GPUs     []model.GPUModel
	At       time.Duration // Submitted - Start
	Duration time.Duration
	Deadline time.Duration // Deadline - Start; 0 when none
}

type bad struct {
	Line   int
	Reason string
}

func summarize(res *Result, start time.Time) ([]got, []bad) {
	var gs []got
	for _, w := range res.Workloads {
		g := got{ID: w.ID, Team: w.Team, Priority: w.Priority, Nodes: w.NumNodes, PerNode: w.Options[0].GPUsPerNode,
			At: w.Submitted.Sub(start), Duration: w.Duration}
		for _, o := range w.Options {
			g.GPUs = append(g.GPUs, o.GPU)
		}
		if !w.Deadline.IsZero() {
			g.Deadline = w.Deadline.Sub(start)
		}
		gs = append(gs, g)
	}
	var bs []bad
	for _, m := range res.Malformed {
		bs = append(bs, bad{m.Line, m.Reason})
	}
	return gs, bs
}

func readFixture(t *testing.T, kind Kind, name string, opt Options) *Result {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Read(kind, f, opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res)
	if opt.Limit == 0 && len(res.Workloads)+len(res.Malformed) != res.Rows {
		t.Errorf("produced %d + malformed %d != rows %d", len(res.Workloads), len(res.Malformed), res.Rows)
	}
	return res
}

const s = time.Second

func TestReadFixtures(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		kind  Kind
		file  string
		opt   Options
		want  []got
		bad   []bad
		notes []string
	}{
		{
			name: "philly unsorted, malformed, zero-GPU and big rows",
			kind: Philly, file: "philly.csv", opt: Options{Start: start},
			want: []got{
				{ID: "philly-2", Team: "philly-6214e9", Nodes: 1, PerNode: 2, GPUs: []model.GPUModel{"P100"}, Duration: 2951500 * time.Millisecond},
				{ID: "philly-3", Team: "philly-6214e9", Nodes: 2, PerNode: 8, GPUs: []model.GPUModel{"P100"}, Duration: 10 * s},
				{ID: "philly-1", Team: "philly-11cb48", Nodes: 1, PerNode: 1, GPUs: []model.GPUModel{"P100"}, At: 48*time.Minute + 52*s, Duration: 66 * s},
				{ID: "philly-9", Team: "philly-ab_cd", Nodes: 16, PerNode: 8, GPUs: []model.GPUModel{"P100"}, At: time.Hour + 46*time.Minute + 57*s, Duration: 5 * s},
			},
			bad: []bad{{5, ReasonNoGPU}, {6, ReasonSubmitTime}, {7, ReasonDuration}, {8, ReasonFieldCount}, {9, ReasonGPUCount}, {11, ReasonMissingTeam}},
			notes: []string{
				"the trace has no GPU type; all 4 jobs ask for P100 (DefaultGPU)",
				"1 jobs asked for more than 8 GPUs and not a multiple of it; rounded up to whole nodes, 4 GPUs added",
			},
		},
		{
			name: "philly 4 GPUs per node and a default GPU",
			kind: Philly, file: "philly.csv", opt: Options{Start: start, GPUsPerNode: 4, DefaultGPU: "V100", Limit: 2},
			want: []got{
				{ID: "philly-2", Team: "philly-6214e9", Nodes: 1, PerNode: 2, GPUs: []model.GPUModel{"V100"}, Duration: 2951500 * time.Millisecond},
				{ID: "philly-3", Team: "philly-6214e9", Nodes: 3, PerNode: 4, GPUs: []model.GPUModel{"V100"}, Duration: 10 * s},
			},
			bad: []bad{{5, ReasonNoGPU}, {6, ReasonSubmitTime}, {7, ReasonDuration}, {8, ReasonFieldCount}, {9, ReasonGPUCount}, {11, ReasonMissingTeam}},
			notes: []string{
				"the trace has no GPU type; all 4 jobs ask for V100 (DefaultGPU)",
			},
		},
		{
			name: "itp duplicate ids and bad rows",
			kind: ITP, file: "itp.csv", opt: Options{Start: start},
			want: []got{
				{ID: "itp-a", Team: "itp", Nodes: 8, PerNode: 8, GPUs: []model.GPUModel{"V100"}, At: 10 * s, Duration: time.Hour},
				{ID: "itp-b", Team: "itp", Nodes: 1, PerNode: 4, GPUs: []model.GPUModel{"V100"}, At: 100 * s, Duration: 50 * s},
				{ID: "itp-a-5", Team: "itp", Nodes: 1, PerNode: 1, GPUs: []model.GPUModel{"V100"}, At: 200 * s, Duration: s},
			},
			bad: []bad{{4, ReasonNoGPU}, {6, ReasonMissingID}, {7, ReasonSubmitTime}, {8, ReasonDuration}, {9, ReasonGPUCount}},
			notes: []string{
				"the trace has no GPU type; all 3 jobs ask for V100 (DefaultGPU)",
				"1 repeated job ids; the line number was appended to make them unique",
			},
		},
		{
			name: "itp-deadline",
			kind: ITPDeadline, file: "itp_deadline.csv", opt: Options{Start: start, Team: "research"},
			want: []got{
				{ID: "itp-deadline-x", Team: "research", Nodes: 1, PerNode: 8, GPUs: []model.GPUModel{"V100"}, At: 100 * s, Duration: 300 * s, Deadline: 500 * s},
			},
			bad:   []bad{{3, ReasonDeadline}, {4, ReasonDeadline}},
			notes: []string{"the trace has no GPU type; all 1 jobs ask for V100 (DefaultGPU)"},
		},
		{
			name: "itp reads the augmented file without deadlines",
			kind: ITP, file: "itp_deadline.csv", opt: Options{Start: start},
			want: []got{
				{ID: "itp-y", Team: "itp", Nodes: 1, PerNode: 1, GPUs: []model.GPUModel{"V100"}, At: 50 * s, Duration: 10 * s},
				{ID: "itp-z", Team: "itp", Nodes: 1, PerNode: 1, GPUs: []model.GPUModel{"V100"}, At: 60 * s, Duration: 10 * s},
				{ID: "itp-x", Team: "itp", Nodes: 1, PerNode: 8, GPUs: []model.GPUModel{"V100"}, At: 100 * s, Duration: 300 * s},
			},
			notes: []string{"the trace has no GPU type; all 3 jobs ask for V100 (DefaultGPU)"},
		},
		{
			name: "openb gpu types, sharing, qos",
			kind: Openb, file: "openb.csv", opt: Options{Start: start},
			want: []got{
				{ID: "openb-pod-a", Team: "openb", Nodes: 1, PerNode: 8, GPUs: []model.GPUModel{"V100", "V100-32GB", "T4"}, Duration: 50 * s},
				{ID: "openb-pod-d", Team: "openb", Priority: 3, Nodes: 1, PerNode: 1, GPUs: []model.GPUModel{"T4"}, At: 20 * s, Duration: 60 * s},
				{ID: "openb-pod-g", Team: "openb", Priority: 1, Nodes: 1, PerNode: 2, GPUs: []model.GPUModel{"A10", "P100", "T4"}, At: 30 * s, Duration: 50 * s},
				{ID: "openb-pod-b", Team: "openb", Priority: 2, Nodes: 1, PerNode: 1, GPUs: []model.GPUModel{"T4"}, At: 100 * s, Duration: 950 * s},
			},
			bad: []bad{{4, ReasonNoGPU}, {6, ReasonGPUMilli}, {7, ReasonDuration}},
			notes: []string{
				"1 tasks have no gpu_spec (any GPU); they ask for T4 (DefaultGPU)",
				"1 tasks share a GPU (gpu_milli < 1000); each asks for one whole GPU",
				`GPU type "G2" (no public name) in 1 tasks' gpu_spec; asked as T4 (DefaultGPU)`,
				`GPU type "G3" (no public name) in 1 tasks' gpu_spec; asked as T4 (DefaultGPU)`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := readFixture(t, tc.kind, tc.file, tc.opt)
			gs, bs := summarize(res, start)
			if d := cmp.Diff(tc.want, gs); d != "" {
				t.Errorf("workloads (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.bad, bs); d != "" {
				t.Errorf("malformed (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.notes, res.Notes); d != "" {
				t.Errorf("notes (-want +got):\n%s", d)
			}
			if res.Kind != tc.kind {
				t.Errorf("kind %q, want %q", res.Kind, tc.kind)
			}
		})
	}
}

// TestPhillyZeroStart: with no Start, Philly keeps its own clock (UTC) and
// offset traces start at the Unix epoch.
func TestZeroStart(t *testing.T) {
	t.Parallel()
	res := readFixture(t, Philly, "philly.csv", Options{})
	if want := time.Date(2017, 10, 9, 6, 13, 3, 0, time.UTC); !res.Workloads[0].Submitted.Equal(want) {
		t.Errorf("philly first at %v, want %v", res.Workloads[0].Submitted, want)
	}
	res = readFixture(t, ITP, "itp.csv", Options{})
	if want := time.Unix(10, 0); !res.Workloads[0].Submitted.Equal(want) {
		t.Errorf("itp first at %v, want %v", res.Workloads[0].Submitted, want)
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		kind  Kind
		input string
		opt   Options
		want  error
	}{
		{"unknown kind", "helios", "a\n", Options{}, ErrUnknownKind},
		{"empty input", Philly, "", Options{}, ErrHeader},
		{"missing column", Philly, "timestamp,duration,num_gpus\n", Options{}, ErrHeader},
		{"deadline column needed", ITPDeadline, "job_id,submission_time,duration,num_gpu\n", Options{}, ErrHeader},
		{"too many GPUs per node", ITP, "", Options{GPUsPerNode: 17}, ErrOptions},
		{"negative GPUs per node", ITP, "", Options{GPUsPerNode: -1}, ErrOptions},
		{"negative limit", ITP, "", Options{Limit: -1}, ErrOptions},
	} {
		_, err := Read(tc.kind, strings.NewReader(tc.input), tc.opt)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestCSVErrorsAreRows: a row the CSV reader cannot parse is Malformed, and
// the rows after it are still read.
func TestCSVErrorsAreRows(t *testing.T) {
	t.Parallel()
	in := "job_id,submission_time,duration,num_gpu\na,1,1,1\n\"b\"x\"\"\"\"\",1,1,1\nc,2,2,2\n"
	res, err := Read(ITP, strings.NewReader(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != len(res.Workloads)+len(res.Malformed) || len(res.Workloads) < 2 {
		t.Errorf("rows %d, workloads %d, malformed %v", res.Rows, len(res.Workloads), res.Malformed)
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path, head string
		want       Kind
	}{
		{"x.csv", "timestamp,duration,num_gpus,gpu_time,cluster\n2017", Philly},
		{"x.csv", "\ufeffTimestamp, Duration ,num_gpus,gpu_time,cluster\r\n", Philly},
		{"x.csv", "job_id,submission_time,duration,num_gpu\n", ITP},
		{"x.csv", "job_id,submission_time,num_iteration,model_name,deadline,batch_size,num_gpu,duration", ITPDeadline},
		{"x.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n", Openb},
		{"dir/philly_jobs.csv", "", Philly},
		{"dir/openb_pod_list_cpu050.csv", "garbage", Openb},
	} {
		k, err := Detect(tc.path, []byte(tc.head))
		if err != nil || k != tc.want {
			t.Errorf("Detect(%q, %q) = %q, %v; want %q", tc.path, tc.head, k, err, tc.want)
		}
	}
	if _, err := Detect("x.csv", []byte("name,time,application,num_replicas,batch_size\n")); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("pollux workload file: %v, want ErrUnknownFormat", err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(filepath.Join("testdata", from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, to)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("philly.csv", "philly/philly_jobs.csv")
	copyFile("openb.csv", "openb/openb_pod_list_default.csv")
	copyFile("itp.csv", "itp/raw/cluster01.csv")
	copyFile("itp_deadline.csv", "itp/raw/cluster02.csv")
	copyFile("itp_deadline.csv", "itp/elasticflow-augmented/cluster02.csv")

	for _, tc := range []struct {
		spec      string
		kind      Kind
		workloads int
		teams     string
	}{
		{"philly", Philly, 4, "philly-11cb48 philly-6214e9 philly-ab_cd"},
		{"philly:philly", Philly, 4, "philly-11cb48 philly-6214e9 philly-ab_cd"},
		{"philly/philly_jobs.csv", Philly, 4, "philly-11cb48 philly-6214e9 philly-ab_cd"},
		{"openb", Openb, 4, "openb"},
		{"itp", ITP, 6, "itp-cluster01 itp-cluster02"},
		{"itp/raw", ITP, 6, "itp-cluster01 itp-cluster02"},
		{"itp-deadline:itp", ITPDeadline, 1, "itp-cluster02"},
		{"itp/elasticflow-augmented", ITPDeadline, 1, "itp-cluster02"},
		{"itp/raw/cluster02.csv", ITPDeadline, 1, "itp-cluster02"},
		{"itp:itp/raw/cluster02.csv", ITP, 3, "itp-cluster02"},
	} {
		res, err := Open(filepath.Join(dir, tc.spec[strings.Index(tc.spec, ":")+1:]), Options{})
		if k, p, ok := strings.Cut(tc.spec, ":"); ok {
			res, err = Open(k+":"+filepath.Join(dir, p), Options{})
		}
		if err != nil {
			t.Errorf("Open(%q): %v", tc.spec, err)
			continue
		}
		teams := map[string]bool{}
		for _, w := range res.Workloads {
			teams[w.Team] = true
		}
		if res.Kind != tc.kind || len(res.Workloads) != tc.workloads || strings.Join(sortedKeys(boolCounts(teams)), " ") != tc.teams {
			t.Errorf("Open(%q): kind %q, %d workloads, teams %v; want %q, %d, %q", tc.spec, res.Kind, len(res.Workloads), teams, tc.kind, tc.workloads, tc.teams)
		}
		for _, m := range res.Malformed {
			if m.File == "" {
				t.Errorf("Open(%q): malformed row without file: %v", tc.spec, m)
			}
		}
		checkResult(t, res)
	}
	for _, tc := range []struct {
		spec string
		want error
	}{
		{"helios:" + dir, ErrUnknownKind},
		{dir, ErrUnknownFormat},
		{"openb:" + filepath.Join(dir, "philly"), ErrUnknownFormat},
	} {
		if _, err := Open(tc.spec, Options{}); !errors.Is(err, tc.want) {
			t.Errorf("Open(%q): %v, want %v", tc.spec, err, tc.want)
		}
	}
	if _, err := Open(filepath.Join(dir, "nope.csv"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
}

func boolCounts(m map[string]bool) map[string]int {
	c := map[string]int{}
	for k := range m {
		c[k] = 1
	}
	return c
}

func TestShape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, per, nodes, each int }{
		{1, 8, 1, 1}, {6, 8, 1, 6}, {8, 8, 1, 8}, {12, 8, 2, 8}, {24, 8, 3, 8}, {128, 8, 16, 8}, {12, 4, 3, 4}, {3, 1, 3, 1},
	} {
		nodes, each := shape(tc.n, tc.per)
		if nodes != tc.nodes || each != tc.each || nodes*each < tc.n {
			t.Errorf("shape(%d, %d) = %d x %d, want %d x %d", tc.n, tc.per, nodes, each, tc.nodes, tc.each)
		}
	}
}
