package server

import (
	"bufio"
	"fmt"
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

// A request whose body trickles in is cut by ReadTimeout (3,000 slow-body
// uploads were once held without end): the server answers or closes the
// connection, it does not wait for the rest.
func TestSlowBodyCutByReadTimeout(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + e.admin +
		"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"spec\": \""
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	var got []byte
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server still held the slow upload after %s (read %q)", time.Since(start).Round(time.Millisecond), got)
			}
			break // closed by the server
		}
	}
	if s := string(got); s != "" && !strings.HasPrefix(s, "HTTP/1.1 4") {
		t.Errorf("answer to a cut upload: %q; want a 4xx or a closed connection", s)
	}
}

// A followed log outlives the read and write timeouts: its handler lifts
// both for its connection.
func TestFollowedLogsOutliveTimeouts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *Config) {
		c.ReadTimeout = 200 * time.Millisecond
		c.WriteTimeout = 200 * time.Millisecond
	})
	id := e.submit(e.admin, task("echo one; sleep 1; echo two"))[0].ID
	code, logs := e.do("GET", fmt.Sprintf("/v1/jobs/%d/logs?follow=1", id), e.admin, nil)
	if code != http.StatusOK || !strings.Contains(string(logs), "one\ntwo\n") {
		t.Errorf("followed logs past 200ms timeouts: %d %q", code, logs)
	}
	// Other requests still work on the same server.
	if code, _ := e.do("GET", "/v1/jobs", e.admin, nil); code != http.StatusOK {
		t.Errorf("GET /v1/jobs: %d", code)
	}
}
