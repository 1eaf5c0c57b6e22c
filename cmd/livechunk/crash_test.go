package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/haproxy"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/testkit/versitygw"
)

// serveNode is a `livechunk serve` process on a fixed address, which a
// test kills (SIGKILL) and starts again.
type serveNode struct {
	t     *testing.T
	store string
	env   []string
	addr  string
	args  []string
	// bin, when set, is a livechunk binary to run (else the test binary
	// runs the command)
	bin  string
	proc *process
	past []string // the output of the processes killed before
}

// freeAddr returns a 127.0.0.1 address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (n *serveNode) url() string { return "http://" + n.addr }

// start runs the node and waits until it listens.
func (n *serveNode) start() {
	n.t.Helper()
	args := append([]string{"serve", "-addr", n.addr, "-store", n.store, "-segment", "1s"}, n.args...)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRecordProcess$")
	cmd.Env = append(append(os.Environ(), n.env...), "LIVECHUNK_HELPER_ARGS="+strings.Join(args, "\n"))
	if n.bin != "" {
		cmd = exec.Command(n.bin, args...)
		cmd.Env = append(os.Environ(), n.env...)
	}
	var stdout mediatest.SyncBuffer
	cmd.Stdout = &stdout
	n.proc = startProcess(n.t, cmd)
	waitFor(n.t, "serve listening on "+n.addr, func() bool {
		if n.proc.exited() {
			n.t.Fatalf("serve exited: %v\n%s", n.proc.err, n.proc.out.String())
		}
		return strings.Contains(stdout.String(), "serving ")
	})
}

// kill kills the node (SIGKILL) and waits for it to exit.
func (n *serveNode) kill() { n.stop(os.Kill) }

// stop sends sig to the node and waits for it to exit.
func (n *serveNode) stop(sig os.Signal) {
	n.proc.cmd.Process.Signal(sig)
	<-n.proc.done
	n.past = append(n.past, n.proc.out.String())
}

// log is the output of all its processes so far.
func (n *serveNode) log() string {
	return strings.Join(append(n.past, n.proc.out.String()), "\n--- restarted ---\n")
}

// device uploads chunks the way a phone does: in the given order, each one
// again until it gets a 2xx answer (a dropped connection, a 5xx, a node
// that is not there: the chunk is kept and retried). sent counts the
// requests; any 4xx fails the test.
type device struct {
	t      *testing.T
	client *http.Client
	sent   atomic.Int64
}

func (d *device) upload(base, stream string, n int, body []byte) {
	url := fmt.Sprintf("%s/ingest/%s/%d", base, stream, n)
	d.do("PUT", url, body)
}

// do sends the request until it gets a 2xx answer.
func (d *device) do(method, url string, body []byte) []byte {
	for attempt := 0; ; attempt++ {
		if attempt == 2000 {
			d.t.Fatalf("%s %s: no 2xx answer after %d attempts", method, url, attempt)
		}
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			d.t.Fatal(err)
		}
		d.sent.Add(1)
		resp, err := d.client.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, err = b.ReadFrom(resp.Body)
			resp.Body.Close()
			switch {
			case err == nil && resp.StatusCode/100 == 2:
				return b.Bytes()
			case err == nil && resp.StatusCode/100 == 4:
				d.t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b.String())
			}
		}
		time.Sleep(10 * time.Millisecond) // the device's retry backoff
	}
}

// shuffledOrder is 0..n-1 with some neighbours swapped: chunks that
// arrive early wait in the ordering window.
func shuffledOrder(rng *rand.Rand, n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	for i := 0; i+1 < n; i++ {
		if rng.IntN(3) == 0 {
			order[i], order[i+1] = order[i+1], order[i]
			i++
		}
	}
	return order
}

// checkRecording waits for the stream's VOD file and checks that it, like
// the playlist, holds every frame of the chunks once, in order, without a
// discontinuity.
func checkRecording(t *testing.T, d *device, base, store, stream string, want []string, readStore func(key string) []byte) {
	t.Helper()
	waitFor(t, stream+"'s VOD file", func() bool {
		resp, err := http.Head(base + "/vod/" + stream + ".mp4")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	pl, err := hls.ParseMedia(readStore(stream + "/index.m3u8"))
	if err != nil || !pl.Ended {
		t.Fatalf("%s: final playlist %v %+v", stream, err, pl)
	}
	for _, sg := range pl.Segments {
		if sg.Discontinuity {
			t.Errorf("%s: discontinuity at %s", stream, sg.URI)
		}
	}
	vod := filepath.Join(t.TempDir(), stream+".mp4")
	if err := os.WriteFile(vod, readStore(stream+"/vod.mp4"), 0o644); err != nil {
		t.Fatal(err)
	}
	if diff := mediatest.EqualHashes(want, mediatest.FrameHashes(t, vod)); diff != "" {
		t.Errorf("%s: the VOD file against the chunks: %s", stream, diff)
	}
}

// killTrials is how many SIGKILL trials each store gets
// (LIVECHUNK_KILL_TRIALS, default 50).
func killTrials(t *testing.T) int {
	if s := os.Getenv("LIVECHUNK_KILL_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("LIVECHUNK_KILL_TRIALS=%q", s)
		}
		return n
	}
	return 50
}

// TestServeSurvivesKill: in each trial a device uploads a stream's chunks
// (some out of order) to `livechunk serve`, which is killed (SIGKILL) once
// or twice at random moments during the uploads and started again on the
// same store; the device retries every chunk whose answer it did not get.
// Then it ends the stream: the VOD file's decoded frames (framemd5) are
// the chunks' frames, each once, in order, and the playlist has no
// discontinuity. On a directory store and on versitygw (S3).
func TestServeSurvivesKill(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := phoneChunks(t, 4)
	var want []string
	var bodies [][]byte
	for _, c := range chunks {
		want = append(want, mediatest.FrameHashes(t, c)...)
		bodies = append(bodies, mustReadFile(t, c))
	}
	trials := killTrials(t)
	for _, kind := range []string{"dir", "versitygw"} {
		t.Run(kind, func(t *testing.T) {
			node := &serveNode{t: t, addr: freeAddr(t), args: strings.Fields(os.Getenv("LIVECHUNK_SERVE_ARGS"))}
			var readStore func(key string) []byte
			switch kind {
			case "dir":
				node.store = filepath.Join(t.TempDir(), "store")
				readStore = func(key string) []byte { return mustReadFile(t, filepath.Join(node.store, key)) }
			case "versitygw":
				g := versitygw.Start(t)
				g.CreateBucket(context.Background(), "media")
				node.store, node.env = g.URL("media"), g.Env()
				readStore = func(key string) []byte {
					_, body, _ := request(t, "GET", node.url()+"/live/"+key, nil)
					if strings.HasSuffix(key, "vod.mp4") {
						_, body, _ = request(t, "GET", node.url()+"/vod/"+strings.TrimSuffix(key, "/vod.mp4")+".mp4", nil)
					}
					return body
				}
			}
			node.start()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("serve's log:\n%s", node.proc.out.String())
				}
			})
			kills := 0
			for trial := range trials {
				rng := rand.New(rand.NewPCG(uint64(trial), 18))
				order := shuffledOrder(rng, len(chunks))
				rng = rand.New(rand.NewPCG(uint64(trial), 19)) // the killer's own
				stream := fmt.Sprintf("t%03d", trial)
				d := &device{t: t, client: &http.Client{Timeout: 30 * time.Second}}
				done := make(chan struct{})
				killed := make(chan int, 1)
				// The killer: after a random number of requests, a random
				// moment later, once or twice.
				go func() {
					n := 0
					defer func() { killed <- n }()
					for k := range 1 + rng.IntN(2) {
						at := int64(1 + rng.IntN(len(chunks)+1) + k*2)
						for d.sent.Load() < at {
							select {
							case <-done:
								return
							case <-time.After(time.Millisecond): // polling the device's counter
							}
						}
						time.Sleep(time.Duration(rng.IntN(20_000)) * time.Microsecond) // a random moment of the request
						node.kill()
						n++
						node.start()
					}
				}()
				for _, i := range order {
					d.upload(node.url(), stream, i, bodies[i])
				}
				close(done)
				kills += <-killed
				d.do("POST", node.url()+"/ingest/"+stream+"/end", nil)
				checkRecording(t, d, node.url(), node.store, stream, want, readStore)
				if t.Failed() {
					t.Fatalf("trial %d failed\n%s", trial, node.proc.out.String())
				}
			}
			t.Logf("%d trials, %d kills (SIGKILL), every recording whole", trials, kills)
		})
	}
}

// TestServeNodesBehindHAProxy: two `livechunk serve` nodes on one S3
// bucket (versitygw) behind HAProxy (docs/haproxy.cfg), which sends each request to the next
// node in turn: a stream's chunks reach both nodes, and the one that does
// not record the stream forwards them to the one that does. In each trial
// three devices upload their streams at once, through HAProxy, while one
// node is stopped at a random moment, killed (SIGKILL) or, every other
// trial, shut down (SIGTERM: its streams are suspended), and started again
// later: the other node takes its streams over. Every recording is whole (framemd5 of
// the VOD file against the chunks) and has no discontinuity, and the
// takeovers happened.
func TestServeNodesBehindHAProxy(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := phoneChunks(t, 6)
	var want []string
	var bodies [][]byte
	for _, c := range chunks {
		want = append(want, mediatest.FrameHashes(t, c)...)
		bodies = append(bodies, mustReadFile(t, c))
	}
	g := versitygw.Start(t)
	g.CreateBucket(context.Background(), "media")
	var nodes []*serveNode
	var addrs []string
	for i := range 2 {
		n := &serveNode{t: t, addr: freeAddr(t), store: g.URL("media"), env: g.Env()}
		n.args = append([]string{"-node", fmt.Sprintf("n%d", i+1), "-advertise", n.url()}, strings.Fields(os.Getenv("LIVECHUNK_SERVE_ARGS"))...)
		n.start()
		nodes = append(nodes, n)
		addrs = append(addrs, n.addr)
	}
	// The configuration the README documents, on this test's ports.
	cfg, err := os.ReadFile(filepath.Join("..", "..", "docs", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	front := freeAddr(t)
	lb := haproxy.Start(t, string(cfg), map[string]string{
		"127.0.0.1:8080": front, "127.0.0.1:8081": addrs[0], "127.0.0.1:8082": addrs[1],
	}, front)
	t.Cleanup(func() {
		if t.Failed() {
			for i, n := range nodes {
				t.Logf("node n%d's log:\n%s", i+1, n.log())
			}
		}
	})
	readStore := func(key string) []byte {
		url := lb.URL() + "/live/" + key
		if k, ok := strings.CutSuffix(key, "/vod.mp4"); ok {
			url = lb.URL() + "/vod/" + k + ".mp4"
		}
		status, body, _ := request(t, "GET", url, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, status, body)
		}
		return body
	}
	const devices = 3
	trials := max(1, killTrials(t)/5)
	for trial := range trials {
		rng := rand.New(rand.NewPCG(uint64(trial), 1818))
		began := time.Now()
		ds := make([]*device, devices)
		orders := make([][]int, devices)
		for i := range ds {
			ds[i] = &device{t: t, client: &http.Client{Timeout: 30 * time.Second}}
			orders[i] = shuffledOrder(rng, len(chunks))
		}
		victim := nodes[rng.IntN(len(nodes))]
		sig := os.Kill // a crash, or every other trial a deploy (SIGTERM: streams suspended)
		if trial%2 == 1 {
			sig = syscall.SIGTERM
		}
		killAt := int64(2 + rng.IntN(devices*len(chunks)))
		restartAt := killAt + int64(2+rng.IntN(devices*2))
		pause := time.Duration(rng.IntN(20_000)) * time.Microsecond
		done := make(chan struct{})
		killed := make(chan struct{})
		go func() {
			defer close(killed)
			sent := func() int64 {
				var n int64
				for _, d := range ds {
					n += d.sent.Load()
				}
				return n
			}
			for _, at := range []int64{killAt, restartAt} {
				for sent() < at {
					select {
					case <-done:
						if victim.proc.exited() {
							victim.start()
						}
						return
					case <-time.After(time.Millisecond): // polling the devices' counters
					}
				}
				if at == killAt {
					time.Sleep(pause) // a random moment of the request
					victim.stop(sig)
				} else {
					victim.start()
				}
			}
		}()
		var wg sync.WaitGroup
		for i, d := range ds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stream := fmt.Sprintf("h%02d-%d", trial, i)
				for _, c := range orders[i] {
					d.upload(lb.URL(), stream, c, bodies[c])
				}
			}()
		}
		wg.Wait()
		close(done)
		<-killed
		for i, d := range ds {
			stream := fmt.Sprintf("h%02d-%d", trial, i)
			d.do("POST", lb.URL()+"/ingest/"+stream+"/end", nil)
			checkRecording(t, d, lb.URL(), "", stream, want, readStore)
		}
		if t.Failed() {
			t.Fatalf("trial %d failed", trial)
		}
		t.Logf("trial %d: node %s stopped (%v) after %d requests, started again after %d: %v", trial, victim.addr, sig, killAt, restartAt, time.Since(began))
	}
	taken := 0
	for _, n := range nodes {
		taken += strings.Count(n.log(), "taking the stream over")
	}
	if taken == 0 {
		t.Errorf("no node took a stream over from the killed one")
	}
	t.Logf("%d trials of %d devices, one node stopped in each; %d streams taken over from a killed node", trials, devices, taken)

}
