package backend

import (
	"testing"
	"time"
)

func TestUnixTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"1733300000.123456", time.Unix(1733300000, 123456000)},
		{"1733300000,5", time.Unix(1733300000, 500000000)},
		{"1733300000.123456789123", time.Unix(1733300000, 123456789)},
		{"1733300000", time.Unix(1733300000, 0)},
		{"", time.Time{}},
		{"0.5", time.Time{}},
		{"later", time.Time{}},
		{"1733300000.x", time.Time{}},
	} {
		if got := UnixTime(tc.in); !got.Equal(tc.want) {
			t.Errorf("UnixTime(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
