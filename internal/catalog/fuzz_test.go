package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gpubroker/internal/model"
)

func FuzzParseAccelerator(f *testing.F) {
	for _, s := range []string{"H100:8", "h100", "T4:0.5", "A100-80GB:8", "NVIDIA-H100-80GB-HBM3:1", "tpu-v4-8", "H1000:2", ":", "H100:1e309", "Inferentia2:1", "", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, n, err := ParseAccelerator(s)
		if err != nil {
			var ue *UnknownGPUError
			var un *UnsupportedError
			var ce *CountError
			if !errors.As(err, &ue) && !errors.As(err, &un) && !errors.As(err, &ce) {
				t.Fatalf("ParseAccelerator(%q) error of unexpected type %T: %v", s, err, err)
			}
			return
		}
		if GPUMemoryGiB(g) == 0 {
			t.Fatalf("ParseAccelerator(%q) = %q, not a canonical model", s, g)
		}
		if n < 1 || n > model.MaxGPUsPerNode {
			t.Fatalf("ParseAccelerator(%q) count %d out of range", s, n)
		}
		if g2, err := ParseGPU(string(g)); err != nil || g2 != g {
			t.Fatalf("canonical %q does not parse to itself: %q, %v", g, g2, err)
		}
	})
}

func FuzzParseGPU(f *testing.F) {
	for _, s := range []string{"H100", "NVIDIA A100", "nvidia-tesla-t4", "Tesla-V100-SXM2-32GB", "tpu-v5e-16", "Gaudi3", "\x00", "----", "ééé"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGPU(s)
		if err == nil && GPUMemoryGiB(g) == 0 {
			t.Fatalf("ParseGPU(%q) = %q, not a canonical model", s, g)
		}
		if err != nil && err.Error() == "" {
			t.Fatalf("ParseGPU(%q): empty error message", s)
		}
	})
}

func FuzzLoadSkyPilotCSV(f *testing.F) {
	seeds := []string{"testdata/skypilot_aws_zones.csv", "testdata/skypilot_gcp_tpu.csv", "testdata/skypilot_bad_price.csv"}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	// A few real rows from the shared catalogs, when present.
	dir := filepath.Join("..", "..", "..", "shared", "data", "catalogs", "skypilot-catalog")
	for _, name := range []string{"nebius_gpu_vms.csv", "lambda_gpu_vms.csv", "mithril_gpu_vms.csv"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		lines := strings.SplitAfter(string(b), "\n")
		f.Add(strings.Join(lines[:min(len(lines), 6)], ""))
	}
	f.Add("InstanceType,AcceleratorName,AcceleratorCount,Price,Region\nx,H100,8.0,1,r\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := LoadSkyPilotCSV(strings.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		for _, o := range c.Offers {
			if o.GPUCount < 1 || o.OnDemand < 0 || o.Spot < 0 || o.InstanceType == "" || o.Region == "" {
				t.Fatalf("bad offer %+v from %q", o, in)
			}
		}
		for _, s := range c.Skipped {
			if s.Reason == "" || s.Line < 1 {
				t.Fatalf("skipped row without reason or line: %+v", s)
			}
		}
		if err := c.Fleet().Validate(); err != nil {
			t.Fatalf("fleet from fuzzed catalog does not validate: %v", err)
		}
	})
}
