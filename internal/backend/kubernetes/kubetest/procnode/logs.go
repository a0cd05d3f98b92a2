package procnode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// logPoll is how often a following reader looks for more output.
const logPoll = 50 * time.Millisecond

// serve starts the node's HTTPS server (the kubelet's port) on 127.0.0.1.
func (n *Node) serve() error {
	cert, err := selfSigned(n.opts.Name)
	if err != nil {
		return fmt.Errorf("procnode: certificate: %w", err)
	}
	ln, err := net.Listen("tcp", hostIP+":0")
	if err != nil {
		return fmt.Errorf("procnode: listen: %w", err)
	}
	n.port = ln.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", n.containerLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	n.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = n.srv.ServeTLS(ln, "", "") }() // ends with srv.Close
	return nil
}

// selfSigned makes the serving certificate (127.0.0.1 and the node's
// name, one year).
func selfSigned(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "procnode " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP(hostIP)},
		DNSNames:     []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// containerLogs serves a container's output as the kubelet does:
// follow, tailLines and limitBytes are honoured; previous, timestamps,
// sinceSeconds, sinceTime and a stream other than All are refused (400),
// since stdout and stderr share one file without timestamps.
func (n *Node) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	for _, k := range []string{"previous", "timestamps", "sinceSeconds", "sinceTime"} {
		if v := q.Get(k); v != "" && v != "false" {
			http.Error(w, "procnode: "+k+" is not supported", http.StatusBadRequest)
			return
		}
	}
	if s := q.Get("stream"); s != "" && s != "All" {
		http.Error(w, "procnode: stream "+strconv.Quote(s)+" is not supported: stdout and stderr are one log", http.StatusBadRequest)
		return
	}
	follow := q.Get("follow") == "true" || q.Get("follow") == "1"
	tail, limit := int64(-1), int64(-1)
	for k, dst := range map[string]*int64{"tailLines": &tail, "limitBytes": &limit} {
		if v := q.Get(k); v != "" {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil || x < 0 {
				http.Error(w, "procnode: bad "+k+" "+strconv.Quote(v), http.StatusBadRequest)
				return
			}
			*dst = x
		}
	}
	n.mu.Lock()
	p := n.byName[ns+"/"+name]
	n.mu.Unlock()
	if p == nil {
		http.Error(w, fmt.Sprintf("procnode: pod %s/%s is not on node %s", ns, name, n.opts.Name), http.StatusNotFound)
		return
	}
	if container != p.container {
		http.Error(w, fmt.Sprintf("procnode: container %q is not in pod %s/%s (it has %q)", container, ns, name, p.container), http.StatusNotFound)
		return
	}
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	f, err := os.Open(p.logPath)
	if !started || errors.Is(err, os.ErrNotExist) {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start", container, name), http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, "procnode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if tail >= 0 {
		if err := seekTail(f, tail); err != nil {
			http.Error(w, "procnode: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	var out io.Writer = w
	if limit >= 0 {
		out = &limitWriter{w: w, n: limit}
	}
	flush := func() {}
	if fl, ok := w.(http.Flusher); ok {
		flush = fl.Flush
	}
	buf := make([]byte, 32<<10)
	for {
		// Whether the process had ended is decided before reading, so a
		// last read gets all it wrote.
		ended := true
		if follow {
			select {
			case <-p.exited:
			default:
				ended = false
			}
		}
		for {
			k, err := f.Read(buf)
			if k > 0 {
				if _, werr := out.Write(buf[:k]); werr != nil {
					return // the client left, or limitBytes is reached
				}
			}
			if err != nil {
				break
			}
		}
		flush()
		if ended {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-p.exited:
		case <-time.After(logPoll):
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int64) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	start := len(data)
	if n > 0 {
		start = 0
		end := len(data)
		if end > 0 && data[end-1] == '\n' {
			end-- // the last line's newline ends it, it does not start one
		}
		for i, seen := end-1, int64(0); i >= 0; i-- {
			if data[i] == '\n' {
				if seen++; seen == n {
					start = i + 1
					break
				}
			}
		}
	}
	_, err = f.Seek(int64(start), io.SeekStart)
	return err
}

// limitWriter writes at most n bytes, then fails.
type limitWriter struct {
	w io.Writer
	n int64
}

var errLimit = errors.New("limitBytes reached")

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errLimit
	}
	if int64(len(p)) > l.n {
		k, err := l.w.Write(p[:l.n])
		l.n -= int64(k)
		if err == nil {
			err = errLimit
		}
		return k, err
	}
	k, err := l.w.Write(p)
	l.n -= int64(k)
	return k, err
}
