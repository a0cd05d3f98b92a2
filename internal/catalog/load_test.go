package catalog

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

func openFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sharedCatalog opens a file of the shared data set, skipping the test
// when the data set is not checked out next to the repository.
func sharedCatalog(t *testing.T, rel ...string) *os.File {
	t.Helper()
	path := filepath.Join(append([]string{"..", "..", "..", "shared", "data", "catalogs"}, rel...)...)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not present; the real catalogs live in shared/data/catalogs beside the repository", path)
	}
	return openFile(t, path)
}

// cents reports whether a and b agree to the cent (the GCP dump carries
// prices to many decimals).
func cents(a, b float64) bool { return math.Abs(a-b) < 0.005 }

func skipReasons(c *Catalog) map[string]int {
	out := map[string]int{}
	for _, s := range c.Skipped {
		out[s.Reason]++
	}
	return out
}

func TestLoadSkyPilotCSVFixture(t *testing.T) {
	t.Parallel()
	c, err := LoadSkyPilotCSV(openFile(t, "testdata/skypilot_aws_zones.csv"), "aws")
	if err != nil {
		t.Fatal(err)
	}
	want := []Offer{
		{Provider: "aws", InstanceType: "g4dn.xlarge", GPU: T4, GPUCount: 1, GPUMemoryGiB: 16, VCPUs: 4, MemoryGiB: 16, Region: "us-west-2", Zone: "us-west-2a", OnDemand: 0.526},
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, GPUMemoryGiB: 80, VCPUs: 192, MemoryGiB: 2048, Region: "us-east-1", Zone: "us-east-1a", OnDemand: 55.04, Spot: 31.10},
		{Provider: "aws", InstanceType: "p5.48xlarge", GPU: H100, GPUCount: 8, GPUMemoryGiB: 80, VCPUs: 192, MemoryGiB: 2048, Region: "us-east-1", Zone: "us-east-1b", OnDemand: 55.04, Spot: 29.95},
	}
	if diff := cmp.Diff(want, c.Offers); diff != "" {
		t.Errorf("offers (-want +got):\n%s", diff)
	}
	type skip struct {
		Line   int
		Type   string
		Reason string
	}
	var got []skip
	for _, s := range c.Skipped {
		if s.Provider != "aws" {
			t.Errorf("skipped row %+v has provider %q, want aws", s, s.Provider)
		}
		// Keep the reason's start: the full text is ParseGPU's message.
		r, _, _ := strings.Cut(s.Reason, ":")
		got = append(got, skip{s.Line, s.InstanceType, r})
	}
	wantSkips := []skip{
		{5, "inf2.xlarge", `accelerator "Inferentia2" cannot be placed yet`},
		{6, "trn1.32xlarge", `accelerator "Trainium" cannot be placed yet`},
		{7, "g6f.large", "fractional GPU count 0.125 (GPU slices are not supported yet)"},
		{8, "m5.large", "no accelerator (CPU-only row)"},
		{9, "p4d.24xlarge", "no on-demand price in this region"},
	}
	if diff := cmp.Diff(wantSkips, got); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
}

func TestLoadSkyPilotCSVColumnOrderAndGPUOnlyRows(t *testing.T) {
	t.Parallel()
	c, err := LoadSkyPilotCSV(openFile(t, "testdata/skypilot_gcp_tpu.csv"), "gcp")
	if err != nil {
		t.Fatal(err)
	}
	o, ok := c.Lookup("gcp", "a3-highgpu-8g", "us-central1")
	if !ok || o.OnDemand != 88.49 || o.Spot != 50.61 || o.GPU != H100 || o.GPUCount != 8 || o.Zone != "" {
		t.Errorf("a3-highgpu-8g = %+v, %v", o, ok)
	}
	if len(c.Offers) != 2 || len(c.Skipped) != 1 || !strings.Contains(c.Skipped[0].Reason, "Google TPU") {
		t.Errorf("offers %d, skipped %+v; want 2 offers and the TPU row skipped", len(c.Offers), c.Skipped)
	}
}

func TestLoadSkyPilotCSVErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		input string
		line  int
		col   string
	}{
		"bad price":        {input: "@testdata/skypilot_bad_price.csv", line: 3, col: "Price"},
		"missing column":   {input: "@testdata/skypilot_no_region.csv", line: 1},
		"empty":            {input: "", line: 1},
		"bad count":        {input: "InstanceType,AcceleratorName,AcceleratorCount,Price,Region\nx,H100,eight,1,r\n", line: 2, col: "AcceleratorCount"},
		"missing region":   {input: "InstanceType,AcceleratorName,AcceleratorCount,Price,Region\nx,H100,8,1,\n", line: 2, col: "Region"},
		"negative price":   {input: "InstanceType,AcceleratorName,AcceleratorCount,Price,Region\nx,H100,8,-1,r\n", line: 2, col: "Price"},
		"nan spot":         {input: "InstanceType,AcceleratorName,AcceleratorCount,Price,Region,SpotPrice\nx,H100,8,1,r,NaN\n", line: 2, col: "SpotPrice"},
		"unbalanced quote": {input: "InstanceType,AcceleratorName,AcceleratorCount,Price,Region\nx,\"H100,8,1,r\n", line: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := tc.input
			if strings.HasPrefix(in, "@") {
				b, err := os.ReadFile(in[1:])
				if err != nil {
					t.Fatal(err)
				}
				in = string(b)
			}
			_, err := LoadSkyPilotCSV(strings.NewReader(in), "lambda")
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want *ParseError", err)
			}
			if pe.Line != tc.line || pe.Column != tc.col {
				t.Errorf("error at line %d column %q, want line %d column %q (%v)", pe.Line, pe.Column, tc.line, tc.col, err)
			}
		})
	}
}

func TestLoadAWSCSVFixture(t *testing.T) {
	t.Parallel()
	c, err := LoadAWSCSV(openFile(t, "testdata/aws_small.csv"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]model.GPUModel{}
	for _, o := range c.Offers {
		got[o.InstanceType] = o.GPU
	}
	want := map[string]model.GPUModel{"p4d.24xlarge": A100, "p4de.24xlarge": A100_80GB, "p3dn.24xlarge": V100_32GB, "p3.16xlarge": V100}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GPU by instance type (-want +got):\n%s", diff)
	}
	o, _ := c.Lookup("aws", "p4d.24xlarge", "us-east-1")
	if o.MemoryGiB != 1152 || o.VCPUs != 96 || o.Interconnect != "400 Gbps EFA" || o.Spot != 0 {
		t.Errorf("p4d.24xlarge = %+v", o)
	}
	if len(c.Skipped) != 2 {
		t.Errorf("skipped = %+v, want inf1 and g6f", c.Skipped)
	}
}

func TestLoadGCPCSVFixture(t *testing.T) {
	t.Parallel()
	c, err := LoadGCPCSV(openFile(t, "testdata/gcp_small.csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Offer{
		{Provider: "gcp", InstanceType: "a2-highgpu-1g", GPU: A100, GPUCount: 1, GPUMemoryGiB: 40, VCPUs: 12, MemoryGiB: 85, Region: "us-central1", OnDemand: 3.67, Spot: 1.17},
		{Provider: "gcp", InstanceType: "a3-highgpu-8g", GPU: H100, GPUCount: 8, GPUMemoryGiB: 80, VCPUs: 208, MemoryGiB: 1872, Region: "us-central1", OnDemand: 88.49, Spot: 50.61},
		{Provider: "gcp", InstanceType: "a3-megagpu-8g", GPU: H100, GPUCount: 8, GPUMemoryGiB: 80, VCPUs: 208, MemoryGiB: 1872, Region: "us-east4", OnDemand: 92.5},
	}
	if diff := cmp.Diff(want, c.Offers); diff != "" {
		t.Errorf("offers (-want +got):\n%s", diff)
	}
	if len(c.Skipped) != 1 || c.Skipped[0].InstanceType != "g4-standard-6" || c.Skipped[0].Line != 5 {
		t.Errorf("skipped = %+v, want the fractional g4-standard-6 row at line 5", c.Skipped)
	}
}

// Real files: counts are those of shared/data/catalogs/README.md.
func TestLoadRealAWS(t *testing.T) {
	t.Parallel()
	c, err := LoadAWSCSV(sharedCatalog(t, "aws", "aws_gpu_instances.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(c.Offers) + len(c.Skipped); got != 1157 {
		t.Errorf("offers %d + skipped %d = %d rows, README says 1,157", len(c.Offers), len(c.Skipped), got)
	}
	facts := []struct {
		it, region string
		gpu        model.GPUModel
		n          int
		od         float64
	}{
		{"p5.48xlarge", "us-east-1", H100, 8, 55.04},
		{"p4d.24xlarge", "us-east-1", A100, 8, 21.957642},
		{"p4de.24xlarge", "us-east-1", A100_80GB, 8, 27.44705},
		{"p5en.48xlarge", "us-east-1", H200, 8, 63.296},
		{"p6-b200.48xlarge", "us-east-1", B200, 8, 113.9328},
		{"g5.xlarge", "us-east-1", A10G, 1, 1.006},
		{"p2.xlarge", "us-east-1", K80, 1, 0.9},
	}
	for _, f := range facts {
		o, ok := c.Lookup("aws", f.it, f.region)
		if !ok || o.GPU != f.gpu || o.GPUCount != f.n || o.OnDemand != f.od {
			t.Errorf("%s %s = %+v (found %v); want %s x%d at %v", f.it, f.region, o, ok, f.gpu, f.n, f.od)
		}
	}
	reasons := skipReasons(c)
	inferentia := 0
	for r, n := range reasons {
		if strings.Contains(r, "AWS Inferentia") {
			inferentia += n
		}
	}
	if inferentia != 86+53 {
		t.Errorf("skipped Inferentia rows = %d, want 139 (86 inf1 + 53 inf2): %v", inferentia, reasons)
	}
}

func TestLoadRealGCP(t *testing.T) {
	t.Parallel()
	c, err := LoadGCPCSV(sharedCatalog(t, "gcp", "gcp_gpu_machine_types.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(c.Offers) + len(c.Skipped); got != 984 {
		t.Errorf("offers %d + skipped %d = %d rows, README says 984", len(c.Offers), len(c.Skipped), got)
	}
	for _, s := range c.Skipped {
		if !strings.HasPrefix(s.Reason, "fractional GPU count") {
			t.Errorf("unexpected skip %+v", s)
		}
	}
	o, ok := c.Lookup("gcp", "a3-highgpu-8g", "us-central1")
	if !ok || !cents(o.OnDemand, 88.49) || !cents(o.Spot, 50.61) || o.GPU != H100 {
		t.Errorf("a3-highgpu-8g us-central1 = %+v, %v; want 88.49 / 50.61 spot", o, ok)
	}
	if got := len(c.ByGPU(A100_80GB)); got != 160 {
		t.Errorf("A100-80GB offers = %d, want 160", got)
	}
}

func TestLoadRealSkyPilot(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		provider model.Provider
		rows     int
		check    func(t *testing.T, c *Catalog)
	}{
		"nebius_gpu_vms.csv": {"nebius", 21, func(t *testing.T, c *Catalog) {
			o, ok := c.Lookup("nebius", "gpu-h200-sxm_8gpu-128vcpu-1600gb", "eu-north1")
			if !ok || o.OnDemand != 28.00 || o.Spot != 11.60 || o.GPU != H200 || o.GPUCount != 8 {
				t.Errorf("Nebius 8x H200 = %+v, %v; want 28.00 on-demand, 11.60 spot", o, ok)
			}
		}},
		"lambda_gpu_vms.csv": {"lambda", 306, func(t *testing.T, c *Catalog) {
			o, ok := c.Lookup("lambda", "gpu_8x_h100_sxm5", "")
			if !ok || o.OnDemand != 23.92 || o.Spot != 0 {
				t.Errorf("Lambda 8x H100 = %+v, %v; want 23.92, no spot", o, ok)
			}
			if got := len(c.ByGPU(GH200)); got != 17 {
				t.Errorf("GH200 offers = %d, want 17", got)
			}
		}},
		"mithril_gpu_vms.csv": {"mithril", 8, func(t *testing.T, c *Catalog) {
			if o, ok := c.Lookup("mithril", "h100-80gb.sxm.8x", ""); !ok || o.OnDemand != 8.0 || o.Region != "us-central1-b" {
				t.Errorf("Mithril cheapest 8x H100 = %+v, %v; want 8.0 in us-central1-b", o, ok)
			}
		}},
	}
	for file, tc := range tests {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			c, err := LoadSkyPilotCSV(sharedCatalog(t, "skypilot-catalog", file), tc.provider)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Skipped) != 0 {
				t.Errorf("skipped %+v; every row of %s is a GPU the broker knows", c.Skipped, file)
			}
			if len(c.Offers) != tc.rows {
				t.Errorf("offers = %d, want %d", len(c.Offers), tc.rows)
			}
			tc.check(t, c)
		})
	}
}

func TestLoadSkyPilotCSVProvider(t *testing.T) {
	t.Parallel()
	for _, p := range []model.Provider{"", "AWS"} {
		if _, err := LoadSkyPilotCSV(strings.NewReader("InstanceType\n"), p); err == nil {
			t.Errorf("provider %q accepted", p)
		}
	}
}
