// Package kubetest helps the Kubernetes backend's tests: an API server that
// goes away and comes back, without touching the shared one.
package kubetest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to Target (an API server's host:port)
// until Cut; Start again brings it back on the same address.
type Proxy struct {
	Target string

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	conns []net.Conn
}

// Start listens (on a free port the first time, on the same address after
// a Cut) and forwards every connection to Target.
func (p *Proxy) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.Target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

// Addr is the address clients dial (host:port).
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Cut refuses new connections and closes the open ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
