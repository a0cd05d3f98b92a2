package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Connections a hostile client holds open: 3,000 idle keep-alive
// connections and 3,000 uploads whose body never comes, against a real
// server process. Each was once held without end; the idle and read
// timeouts must close them all, and the server must go on serving.

const hostileConns = 3000

func TestHostileIdleAndSlowConnections(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	p := newServerProc(t, bin, dir, "--listen", strings.TrimPrefix(url, "http://"),
		"--idle-timeout", "2s", "--read-timeout", "2s")
	p.start(url)
	addr := strings.TrimPrefix(url, "http://")
	token := strings.TrimSpace(readFile(filepath.Join(dir, "admin.token")))

	dial := func(i int, req string, readAnswer bool) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		if _, err := c.Write([]byte(req)); err != nil {
			c.Close()
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		if readAnswer {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("connection %d: %w", i, err)
			}
			resp.Body.Close()
		}
		return c, nil
	}
	idle := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	slow := "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
		"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"spec\": \""
	conns := make([]net.Conn, 0, 2*hostileConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 2*hostileConns)
	open := func(req string, answer bool) {
		sem := make(chan struct{}, 64)
		for i := range hostileConns {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := dial(i, req, answer)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}()
		}
	}
	start := time.Now()
	open(idle, true)
	open(slow, false)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	opened := time.Since(start)
	t.Logf("%d idle and %d slow-body connections opened in %s; server fds %d", hostileConns, hostileConns, opened.Round(time.Millisecond), fds(t, p))

	// Every one is closed by the server: a read sees EOF (or, for an
	// upload, a 4xx answer then EOF), not our own deadline.
	deadline := time.Now().Add(30 * time.Second)
	held := 0
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		buf := make([]byte, 512)
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				held++
			}
			break
		}
	}
	if held > 0 {
		t.Errorf("%d of %d connections still held 30 s after the 2 s idle and read timeouts", held, len(conns))
	}
	t.Logf("all %d closed by the server %s after the last was opened; server fds now %d", len(conns), time.Since(start.Add(opened)).Round(time.Millisecond), fds(t, p))
	if !healthy(url) {
		t.Errorf("the server does not answer /healthz after the attack")
	}
}

// fds counts the server process's open file descriptors.
func fds(t *testing.T, p *serverProc) int {
	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Logf("counting fds: %v", err)
		return -1
	}
	return len(ents)
}
