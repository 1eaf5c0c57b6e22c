// Package haproxy runs HAProxy on 127.0.0.1 in front of test servers: a
// real load balancer, as livechunk's nodes are deployed behind.
package haproxy

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// Proxy is a running HAProxy.
type Proxy struct {
	Addr string // 127.0.0.1:port
	cmd  *exec.Cmd
	log  mediatest.SyncBuffer
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

// Start runs HAProxy with the configuration cfg (HAProxy's own syntax),
// in which each address in addrs (old to new) is replaced first: a
// documented configuration, run on the test's ports. Its log (requests,
// health checks) goes to Log. HAProxy stops when the test ends; Start
// returns once it answers on frontend (an address of cfg after the
// replacement).
func Start(t testing.TB, cfg string, addrs map[string]string, frontend string) *Proxy {
	t.Helper()
	bin := find(t)
	for old, new := range addrs {
		if !strings.Contains(cfg, old) {
			t.Fatalf("haproxy: %s is not in the configuration", old)
		}
		cfg = strings.ReplaceAll(cfg, old, new)
	}
	cfg = strings.Replace(cfg, "\nglobal\n", "\nglobal\n  log stdout format raw local0\n", 1)
	cfg = strings.Replace(cfg, "\ndefaults\n", "\ndefaults\n  log global\n  option httplog\n", 1)
	addr := frontend
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
		resp, err := http.Get("http://" + addr + "/")
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
