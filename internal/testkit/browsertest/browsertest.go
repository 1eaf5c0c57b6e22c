// Package browsertest plays HLS output in a real browser: headless Chromium,
// driven through the DevTools protocol (github.com/chromedp/chromedp), with
// the embedded hls.js of internal/player on Media Source Extensions
// ([PlayHLS]), or the browser's own player in a plain <video src> element
// ([PlayMP4]: progressive MP4, and HLS itself, which Chromium 156 plays
// natively).
//
// [PlayHLS] starts a fresh Chromium for every call (its own profile in a
// temporary directory, no network beyond 127.0.0.1), plays a playlist until the
// video reaches a position or something fails, and returns what the page
// saw: the position, the picture size, every hls.js error event, the
// fragments loaded. The browser and all its processes are gone when PlayHLS
// returns.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// Options tunes [PlayHLS]. The zero value plays until currentTime reaches
// 1 s, for at most 30 s, with the page served by a server of its own.
type Options struct {
	// PageURL is the URL of the page that [Handler] serves, mounted beside
	// the playlist (same origin). When empty, PlayHLS serves the page from
	// an httptest server of its own on 127.0.0.1, so that every media
	// request is cross-origin and the CORS headers are exercised.
	PageURL string
	// MinTime is the video position, in seconds, at which playback counts
	// as a success and PlayHLS returns.
	MinTime float64
	// MinPlayed, when set, also requires the video to have advanced this
	// many seconds past the position where playback began (Result.StartTime):
	// a live stream does not start at 0.
	MinPlayed float64
	// Timeout bounds the playback (from the moment the page starts hls.js).
	// Default 30 s. Browser start and page load have their own bound.
	Timeout time.Duration
	// HLSConfig is passed to new Hls(config); for example
	// {"liveSyncDurationCount": 2}. Default: hls.js defaults.
	HLSConfig map[string]any
	// StopOnError returns as soon as any hls.js error event (not only a
	// fatal one) has fired.
	StopOnError bool
	// Until, when set, is a further condition for success, checked with
	// MinTime and MinPlayed at every poll; for example "every fragment of
	// the playlist is buffered".
	Until func(Result) bool
	// OnPoll, when set, is called with every polled state, on the
	// goroutine that called PlayHLS; for example to let a live feed go on
	// once playback has started. It must not block for long.
	OnPoll func(Result)
}

// HLSError is one hls.js ERROR event (or a page-level failure reported the
// same way: type "pageError", "playError", "mediaElementError" or
// "unsupported").
type HLSError struct {
	Type         string  `json:"type"`    // e.g. "mediaError", "networkError"
	Details      string  `json:"details"` // e.g. "bufferAppendError", "fragParsingError"
	Fatal        bool    `json:"fatal"`
	Reason       string  `json:"reason"`       // reason or error message, when given
	URL          string  `json:"url"`          // fragment or playlist URL, when known
	SN           string  `json:"sn"`           // fragment sequence number ("initSegment" for a map)
	Level        int     `json:"level"`        // level index, -1 if none
	ResponseCode int     `json:"responseCode"` // HTTP status of a failed load
	MimeType     string  `json:"mimeType"`
	SourceBuffer string  `json:"sourceBuffer"`
	BufferLen    float64 `json:"bufferLen"`   // forward buffer on stall errors
	CurrentTime  float64 `json:"currentTime"` // video position when it fired
}

// Stall reports a non-fatal buffer stall or nudge event (hls.js
// bufferStalledError, bufferNudgeOnStall): the playhead did not move for a
// while. At a live edge that is expected; elsewhere it depends on what was
// buffered, see [HLSError.Starved].
func (e HLSError) Stall() bool {
	return !e.Fatal && e.Type == "mediaError" &&
		(e.Details == "bufferStalledError" || e.Details == "bufferNudgeOnStall")
}

// Starved reports a [HLSError.Stall] with at least one second of media
// buffered ahead of the playhead: the data was there and the browser did not
// render it in time, which on a loaded test machine is CPU starvation (see
// Result.DroppedFrames), not a fault of the stream. A hole in the stream
// stalls with little buffer ahead, or fires bufferSeekOverHole, and neither
// counts as starved.
func (e HLSError) Starved() bool {
	return e.Stall() && e.BufferLen >= 1
}

// String gives the error's type and details, and the reason, URL and segment when known.
func (e HLSError) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s", e.Type, e.Details)
	if e.Fatal {
		b.WriteString(" (fatal)")
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", e.Reason)
	}
	if e.URL != "" {
		fmt.Fprintf(&b, " url=%s", e.URL)
	}
	if e.SN != "" {
		fmt.Fprintf(&b, " sn=%s", e.SN)
	}
	if e.ResponseCode != 0 {
		fmt.Fprintf(&b, " http=%d", e.ResponseCode)
	}
	if e.MimeType != "" {
		fmt.Fprintf(&b, " mime=%q", e.MimeType)
	}
	if e.BufferLen != 0 {
		fmt.Fprintf(&b, " buffer=%.3f", e.BufferLen)
	}
	fmt.Fprintf(&b, " at=%.3f", e.CurrentTime)
	return b.String()
}

// Level is a variant as hls.js parsed it from the playlist.
type Level struct {
	Bitrate    int    `json:"bitrate"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	VideoCodec string `json:"videoCodec"`
	AudioCodec string `json:"audioCodec"`
}

// state is what livechunkState() returns in the page.
type state struct {
	CurrentTime   float64        `json:"currentTime"`
	StartTime     float64        `json:"startTime"`
	Duration      float64        `json:"duration"`
	VideoWidth    int            `json:"videoWidth"`
	VideoHeight   int            `json:"videoHeight"`
	Ended         bool           `json:"ended"`
	Paused        bool           `json:"paused"`
	ReadyState    int            `json:"readyState"`
	Buffered      [][2]float64   `json:"buffered"`
	Errors        []HLSError     `json:"errors"`
	FragsLoaded   int            `json:"fragsLoaded"`
	FragsBuffered int            `json:"fragsBuffered"`
	FragURLs      []string       `json:"fragURLs"`
	LevelLoads    int            `json:"levelLoads"`
	PlaylistSizes []int          `json:"playlistSizes"`
	Live          bool           `json:"live"`
	Levels        []Level        `json:"levels"`
	MediaError    string         `json:"mediaError"`
	HLSVersion    string         `json:"hlsVersion"`
	DecodedFrames int            `json:"decodedFrames"`
	DroppedFrames int            `json:"droppedFrames"`
	AudioBytes    int            `json:"audioBytes"`
	SourceBuffers []SourceBuffer `json:"sourceBuffers"`
}

// SourceBuffer is a Media Source Extensions SourceBuffer that hls.js
// created: one per track it feeds (or one for muxed audio and video).
type SourceBuffer struct {
	// MimeType as passed to addSourceBuffer, for example
	// `audio/mp4;codecs="mp4a.40.2"`.
	MimeType string `json:"mimeType"`
	// Buffered lists the buffered time ranges of this buffer alone.
	Buffered [][2]float64 `json:"buffered"`
}

// Result is what the page saw when PlayHLS returned.
type Result struct {
	// CurrentTime is video.currentTime at the last poll, in seconds.
	CurrentTime float64
	// StartTime is video.currentTime when the first "playing" event fired
	// (-1 if playback never started).
	StartTime float64
	// Duration is video.duration (-1 while unknown or infinite, as for live).
	Duration float64
	// VideoWidth and VideoHeight are the decoded picture size.
	VideoWidth, VideoHeight int
	// Ended reports video.ended; Paused video.paused.
	Ended, Paused bool
	// ReadyState is video.readyState (4 = HAVE_ENOUGH_DATA).
	ReadyState int
	// Buffered lists the buffered time ranges.
	Buffered [][2]float64
	// Errors are all hls.js error events, fatal and not, in order.
	Errors []HLSError
	// FragmentsLoaded counts FRAG_LOADED events (init segments excluded);
	// FragmentsBuffered counts FRAG_BUFFERED.
	FragmentsLoaded, FragmentsBuffered int
	// FragmentURLs are the URLs of the loaded fragments, in order.
	FragmentURLs []string
	// PlaylistLoads counts LEVEL_LOADED events (media playlist loads and
	// live reloads); PlaylistSizes is the segment count of each.
	PlaylistLoads int
	PlaylistSizes []int
	// Live is true when the last media playlist loaded had no ENDLIST.
	Live bool
	// Levels are the variants of the multivariant playlist, as parsed.
	Levels []Level
	// MediaError is the video element's MediaError ("code: message").
	MediaError string
	// HLSVersion is Hls.version in the page.
	HLSVersion string
	// DecodedFrames and DroppedFrames are from
	// video.getVideoPlaybackQuality(): frames the decoder produced, and
	// those dropped for lateness (expected under load; not an error).
	DecodedFrames, DroppedFrames int
	// AudioDecodedBytes is video.webkitAudioDecodedByteCount: more than 0
	// once Chromium decoded audio of the stream.
	AudioDecodedBytes int
	// SourceBuffers are the SourceBuffers hls.js created, with what each
	// one buffered: the audio and video timelines as the browser sees them.
	SourceBuffers []SourceBuffer
	// Reached reports that MinTime (and MinPlayed) were reached.
	Reached bool
	// TimedOut reports that the playback timeout expired first.
	TimedOut bool
	// Elapsed is the wall time from starting hls.js to the last poll.
	Elapsed time.Duration
	// Console holds console messages, uncaught exceptions and browser log
	// entries of the page, for diagnostics.
	Console []string
	// Requests are the URLs the page requested, in order.
	Requests []string
	// ForeignRequests are requests to anything but 127.0.0.1 (and data:,
	// blob: URLs): there must be none.
	ForeignRequests []string
}

// Played is how far the video advanced since playback began.
func (r Result) Played() float64 {
	if r.StartTime < 0 {
		return 0
	}
	return r.CurrentTime - r.StartTime
}

// Fatal returns the fatal errors.
func (r Result) Fatal() []HLSError {
	var out []HLSError
	for _, e := range r.Errors {
		if e.Fatal {
			out = append(out, e)
		}
	}
	return out
}

// String summarizes the result on a few lines.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hls.js %s: currentTime=%.3f start=%.3f duration=%.3f size=%dx%d ended=%v paused=%v readyState=%d reached=%v timedOut=%v elapsed=%v\n",
		r.HLSVersion, r.CurrentTime, r.StartTime, r.Duration, r.VideoWidth, r.VideoHeight, r.Ended, r.Paused, r.ReadyState, r.Reached, r.TimedOut, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "  fragments loaded=%d buffered=%d; playlist loads=%d sizes=%v live=%v; buffered=%v; frames decoded=%d dropped=%d; audio bytes=%d; levels=%+v\n",
		r.FragmentsLoaded, r.FragmentsBuffered, r.PlaylistLoads, r.PlaylistSizes, r.Live, r.Buffered, r.DecodedFrames, r.DroppedFrames, r.AudioDecodedBytes, r.Levels)
	for _, sb := range r.SourceBuffers {
		fmt.Fprintf(&b, "  source buffer %s: buffered=%v\n", sb.MimeType, sb.Buffered)
	}
	if r.MediaError != "" {
		fmt.Fprintf(&b, "  media error: %s\n", r.MediaError)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  hls.js error: %s\n", e)
	}
	for _, u := range r.ForeignRequests {
		fmt.Fprintf(&b, "  foreign request: %s\n", u)
	}
	return strings.TrimRight(b.String(), "\n")
}

// browserFlags are the Chromium switches. Besides headless operation, they
// keep the browser from reaching anything but the loopback interface:
// background networking, component updates, sync, QUIC and the proxy are
// off, and the host resolver fails every name other than 127.0.0.1 and
// localhost.
var browserFlags = []struct {
	name  string
	value any
}{
	{"headless", true},
	{"no-sandbox", true},
	{"disable-gpu", true},
	{"disable-quic", true},
	{"no-first-run", true},
	{"no-default-browser-check", true},
	{"disable-background-networking", true},
	{"disable-component-update", true},
	{"disable-sync", true},
	{"disable-default-apps", true},
	{"disable-extensions", true},
	{"disable-breakpad", true},
	{"disable-domain-reliability", true},
	{"disable-client-side-phishing-detection", true},
	{"disable-features", "MediaRouter,OptimizationHints,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions"},
	{"metrics-recording-only", true},
	{"no-pings", true},
	{"no-proxy-server", true},
	{"host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"},
	{"disable-dev-shm-usage", true},
	{"disable-background-timer-throttling", true},
	{"disable-backgrounding-occluded-windows", true},
	{"disable-renderer-backgrounding", true},
	{"mute-audio", true},
	{"password-store", "basic"},
	{"use-mock-keychain", true},
	{"autoplay-policy", "no-user-gesture-required"},
	{"window-size", "800,600"},
}

// startupTimeout bounds starting Chromium and loading the page.
const startupTimeout = 30 * time.Second

// pollInterval is how often the page state is read.
const pollInterval = 100 * time.Millisecond

// PlayHLS plays playlistURL (a multivariant or media playlist) with hls.js in
// a fresh headless Chromium and polls the page until the video reaches
// opts.MinTime (and opts.MinPlayed), ends, reports a fatal error, or the
// timeout expires; then it stops the browser and returns what the page saw.
// Playback failures are reported in the Result, for the caller to judge;
// failures of the test machinery (Chromium does not start, the page does not
// load) fail the test.
//
// Chromium is looked up as "chromium" with [mediatest.RequireTool]: the test
// is skipped when it is missing, unless LIVECHUNK_REQUIRE_TOOLS is set.
func PlayHLS(t testing.TB, playlistURL string, opts Options) Result {
	t.Helper()
	if opts.MinTime <= 0 && opts.MinPlayed <= 0 {
		opts.MinTime = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	pageURL := opts.PageURL
	if pageURL == "" {
		srv := httptest.NewServer(Handler())
		defer srv.Close()
		pageURL = srv.URL + "/"
	}

	b := openPage(t, pageURL)
	defer b.close(t)
	sctx, scancel := context.WithTimeout(b.ctx, startupTimeout)
	defer scancel()
	cfg, err := json.Marshal(opts.HLSConfig)
	if err != nil {
		t.Fatalf("browsertest: HLSConfig: %v", err)
	}
	src, _ := json.Marshal(playlistURL)
	start := time.Now()
	version, err := chromedp.Run(sctx, chromedp.Evaluate[string](fmt.Sprintf("livechunkPlay(%s, %s)", src, cfg)))
	if err != nil {
		t.Fatalf("browsertest: starting hls.js: %v", err)
	}
	t.Logf("browsertest: hls.js %s playing %s (page %s)", version, playlistURL, pageURL)

	var res Result
	timedOut := poll(t, b, opts.Timeout, "livechunkState()", func(_ context.Context, st state) bool {
		res = st.result()
		res.Elapsed = time.Since(start)
		res.Reached = res.CurrentTime >= opts.MinTime &&
			(opts.MinPlayed <= 0 || res.StartTime >= 0 && res.Played() >= opts.MinPlayed) &&
			(opts.Until == nil || opts.Until(res))
		if opts.OnPoll != nil {
			opts.OnPoll(res)
		}
		return res.Reached || res.Ended || len(res.Fatal()) > 0 || opts.StopOnError && len(res.Errors) > 0
	})
	res.TimedOut = timedOut
	res.Console, res.Requests, res.ForeignRequests = b.events()
	if (res.TimedOut || len(res.Fatal()) > 0) && len(res.Console) > 0 {
		t.Logf("browsertest: page console:\n  %s", strings.Join(res.Console, "\n  "))
	}
	return res
}

func (s state) result() Result {
	return Result{
		CurrentTime:       s.CurrentTime,
		StartTime:         s.StartTime,
		Duration:          s.Duration,
		VideoWidth:        s.VideoWidth,
		VideoHeight:       s.VideoHeight,
		Ended:             s.Ended,
		Paused:            s.Paused,
		ReadyState:        s.ReadyState,
		Buffered:          s.Buffered,
		Errors:            s.Errors,
		FragmentsLoaded:   s.FragsLoaded,
		FragmentsBuffered: s.FragsBuffered,
		FragmentURLs:      s.FragURLs,
		PlaylistLoads:     s.LevelLoads,
		PlaylistSizes:     s.PlaylistSizes,
		Live:              s.Live,
		Levels:            s.Levels,
		MediaError:        s.MediaError,
		HLSVersion:        s.HLSVersion,
		DecodedFrames:     s.DecodedFrames,
		DroppedFrames:     s.DroppedFrames,
		AudioDecodedBytes: s.AudioBytes,
		SourceBuffers:     s.SourceBuffers,
	}
}

// browser is one Chromium process tree with one tab.
type browser struct {
	ctx         context.Context // chromedp context of the tab
	cancelTab   context.CancelFunc
	cancelAlloc context.CancelFunc
	dataDir     string

	out lockedBuffer // Chromium's stdout and stderr

	mu       sync.Mutex
	console  []string
	requests []string
	foreign  []string
}

// maxEvents bounds each list of recorded page events.
const maxEvents = 2000

func launch(t testing.TB, exe string) *browser {
	t.Helper()
	// A short directory of its own, not t.TempDir(): Chromium puts a unix
	// socket under TMPDIR, whose path must fit in 108 bytes, and
	// t.TempDir() carries the (sub)test's name.
	root, err := os.MkdirTemp("", "lcb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	b := &browser{dataDir: filepath.Join(root, "profile")}
	home := filepath.Join(root, "home")
	tmp := filepath.Join(root, "tmp")
	for _, d := range []string{b.dataDir, home, tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(b.dataDir),
		chromedp.CombinedOutput(&b.out),
		// Keep the test process's environment (credentials, proxies) away
		// from the browser, and keep its files inside the test's directory.
		chromedp.NoInheritEnv,
		chromedp.Env(
			"PATH="+os.Getenv("PATH"),
			"HOME="+home,
			"TMPDIR="+tmp,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
			"LANG=C.UTF-8",
		),
	}
	for _, f := range browserFlags {
		opts = append(opts, chromedp.Flag(f.name, f.value))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	b.cancelAlloc = acancel
	b.ctx, b.cancelTab = chromedp.NewContext(actx, chromedp.WithListener(b.onEvent))
	return b
}

// openPage launches Chromium, found as [PlayHLS] says, and loads pageURL in
// it; the test fails unless the page loads with HTTP 200. The caller
// closes the browser.
func openPage(t testing.TB, pageURL string) *browser {
	t.Helper()
	b := launch(t, mediatest.RequireTool(t, "chromium"))
	// The first Run starts Chromium, which stops when that Run's context
	// ends: only later actions get a deadline.
	err := chromedp.Do(b.ctx)
	var resp *network.Response
	if err == nil {
		ctx, cancel := context.WithTimeout(b.ctx, startupTimeout)
		resp, err = chromedp.Run(ctx, chromedp.NavigateResponse(pageURL))
		cancel()
	}
	if err == nil && resp.Status != http.StatusOK {
		err = fmt.Errorf("HTTP %d", resp.Status)
	}
	if err != nil {
		out := b.output()
		b.close(t)
		t.Fatalf("browsertest: loading %s in Chromium: %v\n%s", pageURL, err, out)
	}
	return b
}

// poll evaluates expr, a JavaScript expression whose value decodes as a T,
// on b's page every pollInterval until done accepts a value or timeout
// expires (timedOut). done gets the context that bounds the polling.
func poll[T any](t testing.TB, b *browser, timeout time.Duration, expr string, done func(ctx context.Context, v T) bool) (timedOut bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		if err != nil {
			if ctx.Err() != nil {
				return true
			}
			t.Fatalf("browsertest: evaluating %s: %v\n%s", expr, err, b.output())
		}
		if done(ctx, v) {
			return false
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return true
		}
	}
}

// onEvent records console output and requests of the page. It runs on the
// tab's reader goroutine.
func (b *browser) onEvent(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	add := func(list *[]string, s string) {
		if len(*list) < maxEvents {
			*list = append(*list, s)
		}
	}
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			switch {
			case len(a.Value) > 0:
				var s string
				if json.Unmarshal(a.Value, &s) == nil {
					parts = append(parts, s)
				} else {
					parts = append(parts, string(a.Value))
				}
			case a.Description != "":
				parts = append(parts, a.Description)
			default:
				parts = append(parts, string(a.Type))
			}
		}
		add(&b.console, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " ")))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		add(&b.console, fmt.Sprintf("exception: %s (%s:%d)", msg, d.URL, d.LineNumber))
	case *log.EventEntryAdded:
		add(&b.console, fmt.Sprintf("log.%s %s: %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
	case *network.EventRequestWillBeSent:
		u := ev.Request.URL
		add(&b.requests, ev.Request.Method+" "+u)
		if !localURL(u) {
			add(&b.foreign, u)
		}
	case *network.EventLoadingFailed:
		if !ev.Canceled {
			add(&b.console, fmt.Sprintf("network: request %s failed: %s %s", ev.RequestID, ev.ErrorText, ev.BlockedReason))
		}
	}
}

// localURL reports whether u stays on this machine.
func localURL(u string) bool {
	for _, p := range []string{"http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "data:", "blob:", "about:"} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

func (b *browser) events() (console, requests, foreign []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...), append([]string(nil), b.requests...), append([]string(nil), b.foreign...)
}

// output returns the tail of Chromium's own output, for failure messages.
func (b *browser) output() string {
	s := b.out.String()
	const max = 8 << 10
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return "chromium output:\n" + s
}

// close stops Chromium: a graceful close through the protocol, bounded, then
// the allocator kills the process and waits for it. Chromium's helper
// processes (zygote, renderer, GPU and utility processes) that outlive the
// main process are found by their --user-data-dir, which is unique to this
// browser, and killed; the test fails if any survive.
func (b *browser) close(t testing.TB) {
	t.Helper()
	cctx, ccancel := context.WithTimeout(b.ctx, 5*time.Second)
	err := chromedp.Cancel(cctx)
	ccancel()
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("browsertest: closing Chromium: %v", err)
	}
	b.cancelTab()
	b.cancelAlloc() // kills the process if still running and waits for it
	if left := killProcessTree(b.dataDir, 2*time.Second); len(left) > 0 {
		t.Errorf("browsertest: Chromium processes survived: %v", left)
	}
}

// killProcessTree kills every process whose command line has
// --user-data-dir=dir, until none is left for a few consecutive looks
// (a dying zygote can still fork), and returns the PIDs still alive at
// the deadline.
func killProcessTree(dir string, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	quiet := 0
	for {
		pids := processesUsing(dir)
		if len(pids) == 0 {
			quiet++
			if quiet >= 3 {
				return nil
			}
		} else {
			quiet = 0
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return processesUsing(dir)
		}
		<-tick.C
	}
}

// processesUsing lists the live (not zombie) processes started with
// --user-data-dir=dir.
func processesUsing(dir string) []int {
	want := []byte("--user-data-dir=" + dir)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		found := false
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// The state follows the parenthesized command name.
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes and reads,
// capped so that a chatty browser cannot grow it without bound.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
