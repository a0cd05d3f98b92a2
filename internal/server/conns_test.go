package server

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// idleConn opens a keep-alive connection, makes one request on it and
// leaves it idle.
func idleConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return c
}

// Idle keep-alive connections are closed by the idle timeout (3,000 idle
// connections were once held without end).
func TestIdleConnectionsClosed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	addr := strings.TrimPrefix(e.url, "http://")
	var conns []net.Conn
	for range 50 {
		conns = append(conns, idleConn(t, addr))
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 || strings.Contains(err.Error(), "timeout") {
			t.Errorf("idle connection %d: read %d bytes, %v; want it closed by the server", i, n, err)
		}
		c.Close()
	}
}

// Past MaxConns a new connection waits until one closes.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *Config) { c.MaxConns = 3 })
	addr := strings.TrimPrefix(e.url, "http://")
	var held []net.Conn
	for range 3 {
		held = append(held, idleConn(t, addr))
	}
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(e.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a fourth connection was served while three were held (limit 3)")
	}
	held[0].Close()
	client.Timeout = 5 * time.Second
	resp, err := client.Get(e.url + "/healthz")
	if err != nil {
		t.Fatalf("after one of the three closed: %v", err)
	}
	resp.Body.Close()
	for _, c := range held[1:] {
		c.Close()
	}
}
