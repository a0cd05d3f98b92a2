package cli

import (
	"strings"
	"testing"
)

// --tail takes 1 to 10,000 lines and not with -f; --max-log-size takes a
// size. Each mistake is a usage error naming the flag.
func TestLogsTailAndLogSizeFlags(t *testing.T) {
	t.Parallel()
	_, srv := newFakeAPI(t)
	for _, bad := range [][]string{{"logs", "--tail", "0", "1"}, {"logs", "--tail", "10001", "1"}, {"logs", "--tail", "5", "-f", "1"}} {
		if r := runCLI(t, apiArgs(srv.URL, bad...)...); r.code != exitUsage || !strings.Contains(r.stderr, "--tail") {
			t.Errorf("%v: exit %d, want %d; stderr %s", bad, r.code, exitUsage, r.stderr)
		}
	}
	for _, tc := range []struct {
		in   string
		want int64
	}{{"0", 0}, {"1GiB", 1 << 30}, {"512MiB", 512 << 20}, {"100M", 100 << 20}, {"64KiB", 64 << 10}, {"1000", 1000}} {
		if got, err := parseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "1TiB", "-1", "1.5GiB", "GiB", "1 GiB x"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q): no error", bad)
		}
	}
}
