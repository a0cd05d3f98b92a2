package trace

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// cleanName makes s a valid model name: letters, digits, '-', '_' and '.'
// kept, anything else replaced by '_', at most 128 bytes.
func cleanName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// maxSeconds bounds every time field (about 31.7 years): far beyond any
// trace, and safely inside time.Duration.
const maxSeconds = 1e9

// maxGPUs bounds a row's GPU count; larger counts are rejected as bad.
const maxGPUs = 1 << 20

// seconds parses a non-negative number of seconds, integer or decimal.
func seconds(s string) (time.Duration, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	if math.IsNaN(v) || v < 0 || v > maxSeconds {
		return 0, fmt.Errorf("%q seconds is out of range 0..%g", s, float64(maxSeconds))
	}
	return time.Duration(math.Round(v * float64(time.Second))), nil
}

// gpuCount parses a GPU count: 0 is ReasonNoGPU, negative or unparsable
// ReasonGPUCount.
func gpuCount(s string) (int, *rowError) {
	n, err := strconv.Atoi(s)
	if err != nil {
		// Tolerate "4.0": a float with no fraction.
		v, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || v != math.Trunc(v) || math.Abs(v) > maxGPUs {
			return 0, reject(ReasonGPUCount, "%q is not a whole number of GPUs", s)
		}
		n = int(v)
	}
	switch {
	case n == 0:
		return 0, reject(ReasonNoGPU, "CPU-only job (0 GPUs)")
	case n < 0 || n > maxGPUs:
		return 0, reject(ReasonGPUCount, "%d GPUs is out of range 1..%d", n, maxGPUs)
	}
	return n, nil
}
