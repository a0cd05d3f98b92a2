package backendtest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"gpubroker/internal/backend"
)

// The Logs tests of the suite.

// waitLog waits until name's logs contain want.
func waitLog(t *testing.T, s *suite, name, want string) {
	t.Helper()
	deadline := time.Now().Add(s.opt.Timeout)
	for !strings.Contains(s.logs(t, name), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: logs never showed %q", name, want)
		}
		time.Sleep(s.opt.Poll)
	}
}

type line struct {
	text string
	at   time.Time
	err  error
}

// readLines sends each line read from r, then the error that ended it.
func readLines(r io.Reader) <-chan line {
	ch := make(chan line, 100)
	go func() {
		defer close(ch)
		br := bufio.NewReader(r)
		for {
			s, err := br.ReadString('\n')
			if s != "" {
				ch <- line{text: strings.TrimSuffix(s, "\n"), at: time.Now()}
			}
			if err != nil {
				ch <- line{err: err, at: time.Now()}
				return
			}
		}
	}()
	return ch
}

func (s *suite) testLogsFollow(t *testing.T) {
	spec := s.spec("echo line1; sleep 2; echo line2; sleep 0.2")
	s.submit(t, spec)
	r, err := s.b.Logs(context.Background(), spec.Name, true)
	if err != nil {
		t.Fatalf("Logs(follow): %v", err)
	}
	defer r.Close()
	lines := readLines(r)
	var got []line
	timeout := time.After(s.opt.Timeout)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			if l.err != nil {
				if l.err != io.EOF {
					t.Errorf("follow ended with %v, want io.EOF", l.err)
				}
				done = true
				break
			}
			got = append(got, l)
		case <-timeout:
			t.Fatalf("follow did not end %v after submit; got %v", s.opt.Timeout, got)
		}
	}
	var texts []string
	for _, l := range got {
		texts = append(texts, l.text)
	}
	if !slices.Equal(texts, []string{"line1", "line2"}) {
		t.Fatalf("followed lines %q, want [line1 line2]", texts)
	}
	if gap := got[1].at.Sub(got[0].at); gap < time.Second {
		t.Errorf("line1 arrived only %v before line2: not streamed as written", gap)
	}
	if st, _ := s.observe(t, spec.Name); !ended(st.Phase) {
		t.Errorf("follow ended while the attempt is %s", st.Phase)
	}
}

func (s *suite) testLogsFollowContext(t *testing.T) {
	spec := s.spec("echo up; sleep 120")
	s.submit(t, spec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := s.b.Logs(ctx, spec.Name, true)
	if err != nil {
		t.Fatalf("Logs(follow): %v", err)
	}
	defer r.Close()
	lines := readLines(r)
	select {
	case l := <-lines:
		if l.text != "up" {
			t.Fatalf("first line %q (%v), want up", l.text, l.err)
		}
	case <-time.After(s.opt.Timeout):
		t.Fatal("no output")
	}
	cancel()
	for {
		select {
		case l, ok := <-lines:
			if !ok || l.err != nil {
				return
			}
		case <-time.After(s.opt.Timeout):
			t.Fatal("follow kept going after its context was cancelled")
		}
	}
}

func (s *suite) testLogsUnknown(t *testing.T) {
	_, err := s.b.Logs(context.Background(), s.spec("").Name, false)
	if !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Logs of an unknown attempt: %v, want ErrNotFound", err)
	}
}
