package catalog

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gpubroker/internal/model"
)

func TestParseGPUAliases(t *testing.T) {
	t.Parallel()
	tests := map[string]model.GPUModel{
		// canonical names, any case
		"H100": H100, "h100": H100, "gb200": GB200, "B200": B200, "h200": H200,
		"A100-80GB": A100_80GB, "a100": A100, "l40s": L40S, "L4": L4, "a10g": A10G,
		"A10": A10, "v100": V100, "T4": T4, "k80": K80, "p100": P100, "mi300x": MI300X, "MI300": MI300X,
		"gh200": GH200, "RTX-PRO-6000": RTXPro6000, "a6000": A6000,
		// aliases from the brief and SkyPilot
		"H100-80GB": H100, "H100-SXM": H100, "nvidia-h100": H100, "H100-MEGA": H100,
		"a100-80gb": A100_80GB, "A100-SXM4-80GB": A100_80GB, "a100-40gb": A100,
		"V100-32GB": V100_32GB, "RTX6000": RTX6000, "RTXPRO6000": RTXPro6000,
		// Kubernetes nvidia.com/gpu.product labels
		"NVIDIA-H100-80GB-HBM3":   H100,
		"NVIDIA-A100-SXM4-80GB":   A100_80GB,
		"NVIDIA-A100-SXM4-40GB":   A100,
		"NVIDIA-A100-PCIE-40GB":   A100,
		"NVIDIA-A100-80GB-PCIe":   A100_80GB,
		"NVIDIA-H100-NVL":         H100NVL,
		"NVIDIA-H200":             H200,
		"NVIDIA-GH200-480GB":      GH200,
		"Tesla-T4":                T4,
		"Tesla-V100-SXM2-16GB":    V100,
		"Tesla-V100-SXM2-32GB":    V100_32GB,
		"Tesla-P100-PCIE-16GB":    P100,
		"NVIDIA-L40S":             L40S,
		"NVIDIA-A10G":             A10G,
		"NVIDIA-RTX-A6000":        A6000,
		"NVIDIA-B200":             B200,
		"AMD-Instinct-MI300X-OAM": MI300X,
		// GKE cloud.google.com/gke-accelerator labels
		"nvidia-tesla-t4": T4, "nvidia-tesla-a100": A100, "nvidia-a100-80gb": A100_80GB,
		"nvidia-h100-80gb": H100, "nvidia-h100-mega-80gb": H100, "nvidia-l4": L4,
		"nvidia-h200-141gb": H200, "nvidia-tesla-v100": V100,
		// provider price lists
		"NVIDIA H100": H100, "NVIDIA A10G": A10G, "NVIDIA B200 Blackwell": B200,
		"NVIDIA RTX PRO 6000 Blackwell": RTXPro6000, "A100-40GB": A100,
		"H100-80GB-Mega": H100, "  h100  ": H100, "h100_80gb": H100,
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseGPU(in)
			if err != nil {
				t.Fatalf("ParseGPU(%q): %v", in, err)
			}
			if got != want {
				t.Errorf("ParseGPU(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestParseGPUUnknown(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in      string
		suggest model.GPUModel
		msg     string
	}{
		"typo":      {in: "H1000", suggest: H100, msg: `unknown GPU "H1000"; did you mean "H100"?`},
		"case typo": {in: "a100-80gbb", suggest: A100_80GB},
		"l40x":      {in: "L40X", suggest: L40},
		// Letter O for zero: A100 (two glyphs read alike), not A10 (one
		// glyph off and one missing), though both are 2 edits away.
		"letter o": {in: "A1OO", suggest: A100, msg: `unknown GPU "A1OO"; did you mean "A100"?`},
		"letter l": {in: "H1OO", suggest: H100},
		"garbage":  {in: "potato-9000"},
		"empty":    {in: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseGPU(tc.in)
			var ue *UnknownGPUError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseGPU(%q) error = %v, want *UnknownGPUError", tc.in, err)
			}
			if ue.Suggestion != tc.suggest {
				t.Errorf("suggestion = %q, want %q", ue.Suggestion, tc.suggest)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Errorf("message = %q, want %q", err.Error(), tc.msg)
			}
			if tc.suggest == "" && !strings.Contains(err.Error(), "use one of") {
				t.Errorf("message %q does not list the known GPUs", err.Error())
			}
		})
	}
}

func TestParseGPUUnsupported(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"tpu-v4-8":            "Google TPU",
		"tpu-v5e-16":          "Google TPU",
		"TPU-V6E":             "Google TPU",
		"Inferentia":          "AWS Inferentia",
		"Inferentia2":         "AWS Inferentia",
		"AWS Inferentia2":     "AWS Inferentia",
		"Trainium":            "AWS Trainium",
		"Trainium2":           "AWS Trainium",
		"Gaudi":               "Intel Gaudi",
		"Gaudi3":              "Intel Gaudi",
		"Intel Gaudi 2":       "Intel Gaudi",
		"Qualcomm AI 100":     "Qualcomm Cloud AI",
		"AMD Radeon Pro V520": "AMD Radeon graphics GPU",
		"NVIDIA GRID K520":    "NVIDIA GRID graphics GPU",
	}
	for in, family := range tests {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			_, err := ParseGPU(in)
			var ue *UnsupportedError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseGPU(%q) error = %v, want *UnsupportedError", in, err)
			}
			if ue.Family != family {
				t.Errorf("family = %q, want %q", ue.Family, family)
			}
			if !strings.Contains(err.Error(), "cannot be placed yet: gpubroker places NVIDIA/AMD GPUs only") {
				t.Errorf("message %q does not say why", err.Error())
			}
		})
	}
}

func TestParseAccelerator(t *testing.T) {
	t.Parallel()
	type result struct {
		GPU   model.GPUModel
		Count int
	}
	ok := map[string]result{
		"H100:8":    {H100, 8},
		"H100":      {H100, 1},
		"h100:8":    {H100, 8},
		"A100-80GB": {A100_80GB, 1},
		"T4:1":      {T4, 1},
		"L4:8.0":    {L4, 8},
		"B200: 8":   {B200, 8},
		"H100:16":   {H100, 16},
	}
	for in, want := range ok {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			g, n, err := ParseAccelerator(in)
			if err != nil {
				t.Fatalf("ParseAccelerator(%q): %v", in, err)
			}
			if diff := cmp.Diff(want, result{g, n}); diff != "" {
				t.Errorf("ParseAccelerator(%q) (-want +got):\n%s", in, diff)
			}
		})
	}
	bad := map[string]string{
		"T4:0.5":    "fractional GPUs are not supported yet; ask for whole GPUs (T4:1)",
		"H100:0":    "out of range",
		"H100:-1":   "out of range",
		"H100:x":    "not a number",
		"H100:":     "missing",
		"H100:17":   "at most 16",
		"H100:1.5":  "not a whole number",
		"H100:NaN":  "not a number",
		"H100:1e99": "out of range",
	}
	for in, want := range bad {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			_, _, err := ParseAccelerator(in)
			var ce *CountError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseAccelerator(%q) error = %v, want *CountError", in, err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q does not contain %q", err.Error(), want)
			}
		})
	}
	t.Run("unknown gpu", func(t *testing.T) {
		t.Parallel()
		_, _, err := ParseAccelerator("H1000:8")
		var ue *UnknownGPUError
		if !errors.As(err, &ue) || ue.Suggestion != H100 {
			t.Fatalf("error = %v, want *UnknownGPUError suggesting H100", err)
		}
	})
	t.Run("tpu", func(t *testing.T) {
		t.Parallel()
		_, _, err := ParseAccelerator("tpu-v4-8:1")
		var ue *UnsupportedError
		if !errors.As(err, &ue) {
			t.Fatalf("error = %v, want *UnsupportedError", err)
		}
	})
}

func TestGPUsSortedWithMemory(t *testing.T) {
	t.Parallel()
	gs := GPUs()
	if !sort.SliceIsSorted(gs, func(i, j int) bool { return gs[i] < gs[j] }) {
		t.Errorf("GPUs() not sorted: %v", gs)
	}
	if diff := cmp.Diff(gs, GPUs()); diff != "" {
		t.Errorf("GPUs() not stable:\n%s", diff)
	}
	for _, g := range gs {
		if GPUMemoryGiB(g) <= 0 {
			t.Errorf("GPUMemoryGiB(%q) = %d", g, GPUMemoryGiB(g))
		}
		back, err := ParseGPU(string(g))
		if err != nil || back != g {
			t.Errorf("ParseGPU(%q) = %q, %v; canonical names must parse to themselves", g, back, err)
		}
	}
	want := map[model.GPUModel]int{H100: 80, A100: 40, A100_80GB: 80, H200: 141, T4: 16, L4: 24, MI300X: 192}
	for g, m := range want {
		if got := GPUMemoryGiB(g); got != m {
			t.Errorf("GPUMemoryGiB(%q) = %d, want %d", g, got, m)
		}
	}
	if GPUMemoryGiB("nope") != 0 {
		t.Errorf("GPUMemoryGiB of unknown model is not 0")
	}
}

// TestAliasesUnambiguous guards against one spelling mapping to two models.
func TestAliasesUnambiguous(t *testing.T) {
	t.Parallel()
	seen := map[string]model.GPUModel{}
	for _, s := range gpuTable() {
		for _, a := range append([]string{string(s.Model)}, s.Aliases...) {
			n := normalize(a)
			if prev, ok := seen[n]; ok && prev != s.Model {
				t.Errorf("spelling %q maps to both %q and %q", a, prev, s.Model)
			}
			seen[n] = s.Model
		}
	}
}
