// Package haproxy runs HAProxy on 127.0.0.1 in front of test servers: a
// real load balancer, as livechunk's nodes are deployed behind.
package haproxy

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// Proxy is a running HAProxy.
type Proxy struct {
	Addr string // 127.0.0.1:port
	cmd  *exec.Cmd
	log  syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// find returns the haproxy binary (Debian puts it in /usr/sbin, which a
// user's PATH may lack). Without it the test is skipped, unless
// LIVECHUNK_REQUIRE_TOOLS is set.
func find(t testing.TB) string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	return mediatest.RequireTool(t, "haproxy")
}

// Start runs HAProxy with one HTTP frontend on a free port that balances
// round robin over backends (host:port each): every request goes to the
// next live one. A backend is checked with GET health every 100 ms and
// taken out at the first failure; a request whose connection a backend
// refuses is sent to another. HAProxy stops when the test ends.
func Start(t testing.TB, health string, backends ...string) *Proxy {
	t.Helper()
	bin := find(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "  server n%d %s check inter 100ms fall 1 rise 1\n", i+1, b)
	}
	cfg := fmt.Sprintf(`global
  maxconn 1024
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch
frontend fe
  bind %s
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET %s
%s`, addr, health, servers.String())
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: addr}
	p.cmd = exec.Command(bin, "-db", "-f", file) // -db: in the foreground
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy's log:\n%s", p.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Up once it answers (503 while no backend is up yet).
		resp, err := http.Get("http://" + addr + health)
		if err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case <-exited:
			t.Fatalf("haproxy exited:\n%s", p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not answer on %s: %v\n%s", addr, err, p.log.String())
		}
		time.Sleep(10 * time.Millisecond) // polling until it listens
	}
}

// URL is the frontend's base URL.
func (p *Proxy) URL() string { return "http://" + p.Addr }

// Log is what HAProxy wrote so far.
func (p *Proxy) Log() string { return p.log.String() }
