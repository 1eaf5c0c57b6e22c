package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/build"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// chunks measures chunk uploads to a `livechunk serve` process, as phones
// make them: it starts the binary -serve (`serve -addr 127.0.0.1:0 -store
// STORE -segment 1s`, plus -max-streams when given) on a fresh store (a
// directory, or a bucket of a versitygw gateway started for the run), and
// runs -devices devices at once, each its own stream: device d uploads
// -chunks chunks in order (PUT /ingest/dNNN/{n}, the n-th file of CHUNKDIR
// in name order, looping), chunk n at its start plus n times -pace (right
// after the previous answer when that came later; -pace 0: back to back);
// the devices' starts are spread over one pace interval. Each upload's
// latency runs from the request being sent to the whole answer read. Then
// every stream is ended (POST /ingest/dNNN/end) and the server gets SIGTERM.
//
// It prints one Markdown table row: label, store, devices, uploads,
// latency p50, p90, p99 and max (ms), errors (answers other than 200 and
// failed requests), the serve process's peak RSS (VmHWM) and CPU seconds
// (utime+stime from /proc) over the uploads, the gateway's CPU seconds
// over the uploads (versitygw only) and the 1-minute load average at the
// end of the uploads. Details (answers by status, error texts, late sends,
// the ends, the shutdown, serve's warnings) go to standard error.
func chunks(args []string) error {
	fs := flag.NewFlagSet("chunks", flag.ExitOnError)
	bin := fs.String("serve", "", "the livechunk `binary` to run as `livechunk serve`")
	label := fs.String("label", "", "the binary's name in the table (default: its file name)")
	store := fs.String("store", "dir", "dir (a fresh directory) or versitygw (a fresh gateway and bucket)")
	devices := fs.Int("devices", 1, "devices uploading at once, each its own stream")
	count := fs.Int("chunks", 30, "chunks each device uploads")
	pace := fs.Duration("pace", 2*time.Second, "time between a device's chunks (0: back to back)")
	segment := fs.Duration("segment", time.Second, "serve's -segment")
	maxStreams := fs.Int("max-streams", 0, "serve's -max-streams (0: not passed, the binary's default)")
	work := fs.String("work", "", "parent `dir` of the run's store (default: the temp directory)")
	logFile := fs.String("log", "", "run serve with -v and write its log to `file`")
	raw := fs.String("raw", "", "append every upload to `file` (TSV: label store devices pace device chunk ms code)")
	gwBin := fs.String("versitygw", "", "the versitygw binary (default: on PATH, then GOPATH/bin)")
	timeout := fs.Duration("timeout", 2*time.Minute, "time limit of one request")
	_ = fs.Parse(args)
	if fs.NArg() != 1 || *bin == "" {
		return fmt.Errorf("chunks: need -serve BIN and CHUNKDIR")
	}
	if *label == "" {
		*label = filepath.Base(*bin)
	}
	bodies, err := readChunkDir(fs.Arg(0))
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(*work, "lcchunks-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	url, env := filepath.Join(tmp, "store"), os.Environ()
	var gw *gateway
	switch *store {
	case "dir":
	case "versitygw":
		gw, err = startGateway(*gwBin, filepath.Join(tmp, "gw"))
		if err != nil {
			return err
		}
		defer gw.stop()
		if err := gw.createBucket(context.Background(), "bench"); err != nil {
			return err
		}
		url, env = gw.url("bench"), append(env, gw.env(tmp)...)
	default:
		return fmt.Errorf("chunks: -store %q: dir or versitygw", *store)
	}

	srv, err := startServe(*bin, url, env, *segment, *maxStreams, *logFile)
	if err != nil {
		return err
	}
	defer srv.kill()

	// The uploads.
	tr := &http.Transport{MaxIdleConns: *devices + 16, MaxIdleConnsPerHost: *devices + 16, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: *timeout}
	type upload struct {
		lat  time.Duration
		code int // 0: the request failed
		msg  string
		late bool
	}
	ups := make([][]upload, *devices)
	cpu0, gcpu0 := procCPU(srv.cmd.Process.Pid), gw.cpu()
	start := time.Now().Add(20 * time.Millisecond)
	var wg sync.WaitGroup
	for d := range *devices {
		ups[d] = make([]upload, *count)
		wg.Go(func() {
			first := start.Add(time.Duration(d) * *pace / time.Duration(*devices))
			for n := range *count {
				due := first.Add(time.Duration(n) * *pace)
				wait := time.Until(due)
				if wait > 0 {
					time.Sleep(wait) // the device's next chunk is not recorded yet
				}
				u := &ups[d][n]
				u.late = *pace > 0 && wait < -10*time.Millisecond
				body := bodies[n%len(bodies)]
				t0 := time.Now()
				code, msg := put(client, fmt.Sprintf("%s/ingest/%s/%d", srv.base, deviceName(d), n), body)
				u.lat, u.code, u.msg = time.Since(t0), code, msg
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	cpu1, gcpu1 := procCPU(srv.cmd.Process.Pid), gw.cpu()
	hwm := procHWM(srv.cmd.Process.Pid)
	load := loadAvg()

	// The ends, all at once, as devices that stop together.
	ends := make([]upload, *devices)
	for d := range *devices {
		wg.Go(func() {
			t0 := time.Now()
			code, msg := post(client, fmt.Sprintf("%s/ingest/%s/end", srv.base, deviceName(d)))
			ends[d] = upload{lat: time.Since(t0), code: code, msg: msg}
		})
	}
	wg.Wait()
	tr.CloseIdleConnections()
	shut, shutErr := srv.stop(3 * time.Minute)

	// The report.
	var lats []time.Duration
	errs, statuses, late := map[string]int{}, map[string]int{}, 0
	nerr := 0
	var rawOut bytes.Buffer
	for d := range ups {
		for n, u := range ups[d] {
			lats = append(lats, u.lat)
			if u.late {
				late++
			}
			if u.code != http.StatusOK {
				nerr++
				errs[fmt.Sprintf("%d %s", u.code, u.msg)]++
			} else {
				statuses[u.msg]++
			}
			fmt.Fprintf(&rawOut, "%s\t%s\t%d\t%v\t%d\t%d\t%.3f\t%d\n", *label, *store, *devices, *pace, d, n, float64(u.lat)/1e6, u.code)
		}
	}
	if *raw != "" {
		f, err := os.OpenFile(*raw, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = f.Write(rawOut.Bytes())
		if err := errors.Join(err, f.Close()); err != nil {
			return err
		}
	}
	var endLats []time.Duration
	endErrs := map[string]int{}
	for _, e := range ends {
		endLats = append(endLats, e.lat)
		if e.code != http.StatusOK {
			endErrs[fmt.Sprintf("%d %s", e.code, e.msg)]++
		}
	}
	w := os.Stderr
	fmt.Fprintf(w, "%s %s: %d devices x %d chunks, pace %v: %d uploads in %.1f s; answers %v; %d sent late (the previous answer came after the next chunk's time)\n",
		*label, *store, *devices, *count, *pace, len(lats), wall.Seconds(), statuses, late)
	printCounts(w, "upload errors", errs)
	p := pct(endLats)
	fmt.Fprintf(w, "ends: p50 %.0f ms, max %.0f ms\n", p(0.5), p(1))
	printCounts(w, "end errors", endErrs)
	fmt.Fprintf(w, "shutdown (SIGTERM to exit): %.1f s", shut.Seconds())
	if shutErr != nil {
		fmt.Fprintf(w, " (%v); the last lines serve wrote:\n  %s", shutErr, strings.Join(srv.log.lastLines(), "\n  "))
	}
	fmt.Fprintln(w)
	srv.log.report(w)
	if gw != nil {
		select {
		case <-gw.exited:
			fmt.Fprintf(w, "versitygw exited during the run: %s\n", gw.out.String())
		default:
		}
	}

	q := pct(lats)
	gcpu := "—"
	if gw != nil {
		gcpu = fmt.Sprintf("%.1f", gcpu1-gcpu0)
	}
	fmt.Printf("| %s | %s | %d | %d | %.0f | %.0f | %.0f | %.0f | %d | %.0f | %.1f | %s | %.2f |\n",
		*label, *store, *devices, len(lats), q(0.5), q(0.9), q(0.99), q(1), nerr, hwm, cpu1-cpu0, gcpu, load)
	return nil
}

func deviceName(d int) string { return fmt.Sprintf("d%03d", d) }

// pct returns the nearest-rank quantile function of d, in ms.
func pct(d []time.Duration) func(p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return func(p float64) float64 {
		if len(s) == 0 {
			return math.NaN()
		}
		i := max(int(math.Ceil(p*float64(len(s))))-1, 0)
		return float64(s[i]) / 1e6
	}
}

func printCounts(w io.Writer, what string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	keys := slices.Collect(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	fmt.Fprintf(w, "%s:\n", what)
	for _, k := range keys {
		fmt.Fprintf(w, "  %d x %s\n", m[k], k)
	}
}

// readChunkDir reads the *.mp4 files of dir, in name order.
func readChunkDir(dir string) ([][]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.mp4"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("chunks: no *.mp4 in %s", dir)
	}
	slices.Sort(names)
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// put uploads body and returns the status code and the answer's "status"
// (or, for an answer other than 200, its "error" or text); code 0 when the
// request failed.
func put(c *http.Client, url string, body []byte) (int, string) {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "video/mp4")
	return do(c, req)
}

func post(c *http.Client, url string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (int, string) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "reading the answer: " + err.Error()
	}
	var a struct{ Status, Error string }
	_ = json.Unmarshal(b, &a)
	switch {
	case resp.StatusCode != http.StatusOK && a.Error != "":
		return resp.StatusCode, a.Error
	case resp.StatusCode != http.StatusOK:
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	return resp.StatusCode, a.Status
}

// serveProc is a running `livechunk serve`.
type serveProc struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	log    *serveLog
	exited chan struct{}
}

var serveURL = regexp.MustCompile(`serving .* on (http://127\.0\.0\.1:[0-9]+)`)

// startServe runs bin serve on store and waits until it prints its URL
// (it does once it listens).
func startServe(bin, store string, env []string, segment time.Duration, maxStreams int, logFile string) (*serveProc, error) {
	args := []string{"serve", "-addr", "127.0.0.1:0", "-store", store, "-segment", segment.String()}
	if maxStreams > 0 {
		args = append(args, "-max-streams", strconv.Itoa(maxStreams))
	}
	sl := &serveLog{}
	if logFile != "" {
		args = append(args, "-v")
		f, err := os.Create(logFile)
		if err != nil {
			return nil, err
		}
		sl.file = f
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stderr = sl
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serveProc{cmd: cmd, log: sl, exited: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := serveURL.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); sl.close(); close(p.exited) }()
	select {
	case p.base = <-found:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s serve exited: %s", bin, sl.String())
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s serve did not print its URL in 30 s: %s", bin, sl.String())
	}
}

// stop sends SIGTERM and waits up to limit for the process to exit (then
// kills it); it returns how long the exit took and how it went.
func (p *serveProc) stop(limit time.Duration) (time.Duration, error) {
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(limit):
		p.kill()
		return time.Since(t0), fmt.Errorf("still running after %v; killed", limit)
	}
	if !p.cmd.ProcessState.Success() {
		return time.Since(t0), fmt.Errorf("exit: %v", p.cmd.ProcessState)
	}
	return time.Since(t0), nil
}

func (p *serveProc) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// serveLog takes serve's standard error: all of it to the log file when
// there is one, and its warnings and errors (and the first lines) in
// memory for the report.
type serveLog struct {
	mu       sync.Mutex
	file     *os.File
	partial  []byte
	head     []string // the first lines
	tail     []string // the last lines
	problems map[string]int
	nlines   int
}

func (l *serveLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		if _, err := l.file.Write(b); err != nil {
			return 0, err
		}
	}
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

var logNoise = regexp.MustCompile(`^time=\S+ |(stream|key)=\S+ ?|/ingest/[^/ ]+/[0-9]+|chunk [0-9]+ of "[^"]+"|"d[0-9]{3}"`)

func (l *serveLog) line(s string) {
	l.nlines++
	if len(l.head) < 10 {
		l.head = append(l.head, s)
	}
	l.tail = append(l.tail, s)
	if len(l.tail) > 10 {
		l.tail = l.tail[1:]
	}
	if strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") || strings.Contains(s, "panic") || strings.Contains(s, "fatal") {
		if l.problems == nil {
			l.problems = map[string]int{}
		}
		l.problems[logNoise.ReplaceAllString(s, "")]++ // the same message for every stream, once
	}
}

func (l *serveLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
	if l.file != nil {
		_ = l.file.Close()
	}
}

func (l *serveLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.head, "\n")
}

func (l *serveLog) lastLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.tail)
}

func (l *serveLog) report(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	printCounts(w, "serve's warnings and errors (stream names and times left out)", l.problems)
}

// procCPU returns the user+system CPU seconds of process pid so far.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return math.NaN()
	}
	f := strings.Fields(string(b[i+1:])) // from field 3, the state
	if len(f) < 13 {
		return math.NaN()
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// procHWM returns the peak RSS of process pid in MB (VmHWM).
func procHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return math.NaN()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return math.NaN()
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return math.NaN()
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// gateway is a versitygw S3 gateway (posix backend) on 127.0.0.1, started
// as internal/testkit/versitygw starts it for the tests.
type gateway struct {
	cmd      *exec.Cmd
	out      *mediatest.SyncBuffer
	exited   chan struct{}
	endpoint string
}

const gwAccess, gwSecret = "livechunkbench", "livechunk-bench-secret"

func startGateway(bin, root string) (*gateway, error) {
	if bin == "" {
		if p, err := exec.LookPath("versitygw"); err == nil {
			bin = p
		} else {
			bin = filepath.Join(build.Default.GOPATH, "bin", "versitygw")
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	g := &gateway{out: &mediatest.SyncBuffer{}, exited: make(chan struct{}), endpoint: "http://" + addr}
	g.cmd = exec.Command(bin, "--port", addr, "--quiet", "posix", root)
	g.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+gwAccess, "ROOT_SECRET_KEY="+gwSecret)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return g, nil
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("versitygw exited: %s", g.out.String())
		default:
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("versitygw did not listen on %s: %v\n%s", addr, err, g.out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the port
	}
}

func (g *gateway) createBucket(ctx context.Context, name string) error {
	c := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(g.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(gwAccess, gwSecret, ""),
	})
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("versitygw: create bucket: %w\n%s", err, g.out.String())
	}
	return nil
}

// url is the store URL of bucket, as `livechunk serve -store` takes it.
func (g *gateway) url(bucket string) string {
	return "s3://" + bucket + "?region=us-east-1&use_path_style=true&disable_https=true&request_checksum_calculation=when_required&response_checksum_validation=when_required&endpoint=" + g.endpoint
}

// env is the environment a process needs to open url: the gateway's
// credentials, and none of the machine's AWS configuration.
func (g *gateway) env(tmp string) []string {
	none := filepath.Join(tmp, "none")
	return []string{"AWS_ACCESS_KEY_ID=" + gwAccess, "AWS_SECRET_ACCESS_KEY=" + gwSecret, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none}
}

// cpu is the gateway's CPU seconds so far (NaN without a gateway).
func (g *gateway) cpu() float64 {
	if g == nil {
		return math.NaN()
	}
	return procCPU(g.cmd.Process.Pid)
}

func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
}
