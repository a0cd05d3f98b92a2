package spec

import (
	"strings"
	"testing"
)

// A whole number in float form is read as one and range-checked like any
// other (priority: 1e15 once slipped past the int32 check).
func TestIntegerFloatForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ value, err string }{
		{"1e3", ""},
		{"8.0", ""},
		{"2147483647", ""},
		{"1e15", "1e15 is too large"},
		{"-1e10", "-1e10 is too large"},
		{"2147483648", "2147483648 is too large"},
		{"1.5", `expected a whole number, got "1.5"`},
		{".inf", `expected a whole number, got ".inf"`},
	} {
		src := "resources:\n  accelerators: H100:1\nx-gpubroker:\n  priority: " + tc.value + "\nrun: echo\n"
		_, err := ParseTask([]byte(src), "t.yaml")
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("priority %s: %v", tc.value, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), "x-gpubroker.priority: "+tc.err)):
			t.Errorf("priority %s: %v; want x-gpubroker.priority: %s", tc.value, err, tc.err)
		}
	}
}
