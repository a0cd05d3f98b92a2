package sqlstore

import "testing"

func TestBind(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		numbered bool
		in, want string
	}{
		{"question marks kept", false, `a = ? AND b IN (?, ?)`, `a = ? AND b IN (?, ?)`},
		{"numbered in order", true, `a = ? AND b IN (?, ?)`, `a = $1 AND b IN ($2, $3)`},
		{"casts untouched", true, `written >= ?::text::xid8`, `written >= $1::text::xid8`},
		{"none", true, `SELECT 1`, `SELECT 1`},
		{"ten and more", true, `??????????`, `$1$2$3$4$5$6$7$8$9$10`},
	} {
		if got := (Dialect{Numbered: c.numbered}).Bind(c.in); got != c.want {
			t.Errorf("%s: Bind(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}
