package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livechunk/livechunk/internal/testkit/faultblob"
	"github.com/livechunk/livechunk/internal/testkit/hlscheck"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"gocloud.dev/blob/memblob"
)

func TestRecordCommand(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	var out, errb bytes.Buffer
	in := mediatest.Testdata("bframes.mp4")
	code := run([]string{"record", "-format", "ts", "-segment", "1s", "-vod", in, filepath.Join(dir, "rec")}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "4 segments, 120 frames") {
		t.Errorf("summary: %s", out.String())
	}
	text, err := os.ReadFile(filepath.Join(dir, "rec", "index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	m, errs := hlscheck.Check(string(text))
	for _, e := range errs {
		t.Error(e)
	}
	if m.Type != "VOD" || len(m.Entries) != 4 || !strings.HasSuffix(m.Entries[0].URI, ".ts") {
		t.Errorf("playlist: %s", text)
	}
	want := mediatest.FrameHashes(t, in)
	got := mediatest.FrameHashes(t, filepath.Join(dir, "rec", "index.m3u8"))
	if d := mediatest.EqualHashes(want, got); d != "" {
		t.Error(d)
	}
}

func TestRecordEmbeddedSample(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"record", "-sample", filepath.Join(dir, "out")}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := mediatest.FrameHashes(t, writeTemp(t, sampleClip))
	got := mediatest.FrameHashes(t, filepath.Join(dir, "out", "index.m3u8"))
	if d := mediatest.EqualHashes(want, got); d != "" {
		t.Error(d)
	}
	if len(want) != 360 {
		t.Errorf("sample clip has %d frames, want 360", len(want))
	}
}

// TestDemo runs the demo once through, ten times faster than real time, and
// checks the stream it served decodes to the embedded clip.
func TestDemo(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	store := filepath.Join(t.TempDir(), "store")
	var out, errb bytes.Buffer
	code := run([]string{"demo", "-addr", "127.0.0.1:0", "-store", store, "-loops", "1", "-speed", "10", "-segment", "2s"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "/watch/demo") {
		t.Errorf("no player URL printed: %s", out.String())
	}
	text, err := os.ReadFile(filepath.Join(store, "demo", "index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	m, errs := hlscheck.Check(string(text))
	for _, e := range errs {
		t.Error(e)
	}
	if !m.Ended || len(m.Entries) != 6 {
		t.Errorf("demo playlist: ended %v, %d segments\n%s", m.Ended, len(m.Entries), text)
	}
	want := mediatest.FrameHashes(t, writeTemp(t, sampleClip))
	got := mediatest.FrameHashes(t, filepath.Join(store, "demo", "index.m3u8"))
	if d := mediatest.EqualHashes(want, got); d != "" {
		t.Error(d)
	}
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cliCase is a command line, its exit code and a part of its output.
type cliCase struct {
	args []string
	code int
	msg  string
}

// runCases runs each command line and checks its exit code and output.
func runCases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, code, c.code, errb.String())
		}
		if !strings.Contains(errb.String()+out.String(), c.msg) {
			t.Errorf("%v: output lacks %q:\n%s%s", c.args, c.msg, out.String(), errb.String())
		}
	}
}

func TestUsageAndErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mp4")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a video "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	runCases(t, []cliCase{
		{[]string{"record"}, exitUsage, "Usage: livechunk record"},
		{[]string{"record", "-format", "webm", "a", "b"}, exitUsage, "unknown format"},
		{[]string{"record", "-vod", "-event", "a", "b"}, exitUsage, "exclude"},
		{[]string{"nope"}, exitUsage, "unknown command"},
		{[]string{"record", filepath.Join(dir, "missing.mp4"), dir}, exitFailure, "no such file"},
		{[]string{"record", garbage, filepath.Join(dir, "out")}, exitFailure, "invalid input"},
		{[]string{"record", "-h"}, exitOK, "Examples:"},
		{[]string{"serve", "-h"}, exitOK, "Example:"},
		{[]string{"demo", "-h"}, exitOK, "Example:"},
		{[]string{"version", "-h"}, exitOK, "Example:"},
		{[]string{"-h"}, exitOK, "Examples:"},
		{[]string{"record", "-nope", "a", "b"}, exitUsage, "flag provided but not defined"},
		{[]string{"serve", "-nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"serve", "extra"}, exitUsage, "Usage: livechunk serve"},
		{[]string{"serve", "-addr", "127.0.0.1:0", "-store", dir, "-format", "webm"}, exitUsage, "unknown format"},
		{[]string{"demo", "-segment", "soon"}, exitUsage, "invalid value"},
		{[]string{"demo", "-speed", "0"}, exitUsage, "-speed must be positive"},
		{[]string{"version", "extra"}, exitUsage, "Usage: livechunk version"},
		{[]string{"serve", "-addr", "256.0.0.1:99999", "-store", dir}, exitFailure, "livechunk:"},
		{[]string{"serve", "-addr", "127.0.0.1:0", "-store", dir, "-base-path", "/live"}, exitFailure, "BasePath \"/live\""},
		{[]string{"version"}, exitOK, "livechunk"},
		{[]string{"record", "in.mp4"}, exitUsage, "DEST is missing"},
		{[]string{"record", "-segment", "2s"}, exitUsage, "INPUT and DEST are missing"},
		{[]string{"stitch", "in.m3u8"}, exitUsage, "-o OUT is missing"},
		{[]string{"stitch", "-o", "x.mp4"}, exitUsage, "SOURCE is missing"},
		{[]string{"record", "a", "b", "-nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"record", "-segment", "0s", "a", "b"}, exitUsage, "must be more than 0"},
		{[]string{"record", "-segment", "-3s", "a", "b"}, exitUsage, "must be more than 0"},
		{[]string{"stitch", "-from", "-1", "-o", "x.mp4", "a"}, exitUsage, "must be more than 0"},
		{[]string{"serve", "-lease", "0"}, exitUsage, "must be more than 0"},
	})
}

// TestBusyPort: a port in use is named, with the flag that moves it.
func TestBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	runCases(t, []cliCase{
		{[]string{"serve", "-addr", ln.Addr().String(), "-store", t.TempDir()}, exitFailure, ln.Addr().String() + " is in use (another livechunk?): stop it, or listen elsewhere with -addr"},
	})
}

// TestFlagsAfterOperands: flags go anywhere among the operands, as users
// type them ("record in.mp4 out -segment 1s" recorded into a directory
// named after the flag's value before); after "--" everything is an
// operand.
func TestFlagsAfterOperands(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	t.Chdir(dir)
	in := mediatest.Testdata("bframes.mp4")
	var out, errb bytes.Buffer
	if code := run([]string{"record", in, "rec", "-segment", "1", "-vod"}, &out, &errb); code != exitOK {
		t.Fatalf("record, flags after the operands: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "4 segments, 120 frames") {
		t.Errorf("summary: %s", out.String())
	}
	for _, stray := range []string{"1", "-vod", "-segment"} {
		if _, err := os.Stat(stray); err == nil {
			t.Errorf("a flag was taken for an operand: %q exists", stray)
		}
	}
	errb.Reset()
	// Seconds and ffmpeg's time syntax for the time flags.
	if code := run([]string{"stitch", "rec/index.m3u8", "-from", "00:00:01", "-to", "2", "-o", "clip.mp4"}, &out, &errb); code != exitOK {
		t.Fatalf("stitch -from 00:00:01 -to 2: exit %d: %s", code, errb.String())
	}
	if got := mediatest.FrameHashes(t, "clip.mp4"); len(got) != 30 {
		t.Errorf("a clip of 1 s at 30 fps decodes to %d frames", len(got))
	}
	errb.Reset()
	if code := run([]string{"stitch", "rec/index.m3u8", "-o", "talk.mp4"}, &out, &errb); code != exitOK {
		t.Fatalf("stitch, -o after the source: exit %d: %s", code, errb.String())
	}
	if got := mediatest.FrameHashes(t, "talk.mp4"); len(got) != 120 {
		t.Errorf("stitched file decodes to %d frames, want 120", len(got))
	}
	errb.Reset()
	if code := run([]string{"record", "--", in, "-odd"}, &out, &errb); code != exitOK {
		t.Fatalf("record -- in -odd: exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join("-odd", "index.m3u8")); err != nil {
		t.Errorf("after --, \"-odd\" is the destination: %v", err)
	}
}

// TestSummaryListsOnePage checks that the summary reads one page of the
// destination's listing, not all of it: a recording of hours, or a shared
// bucket, may hold thousands of objects under the prefix.
func TestSummaryListsOnePage(t *testing.T) {
	ctx := context.Background()
	mem := memblob.OpenBucket(nil)
	defer mem.Close()
	put := func(key string, n int) {
		if err := mem.WriteAll(ctx, key, make([]byte, n), nil); err != nil {
			t.Fatal(err)
		}
	}
	put("cam/index.m3u8", 819)
	put("cam/master.m3u8", 178)
	put("cam/init-0.mp4", 1125)
	for i := range 2500 {
		put(fmt.Sprintf("cam/seg-%06d.m4s", i), 100+i)
	}
	for i := range 1500 {
		put(fmt.Sprintf("cam/old/seg-%06d.m4s", i), 1)
	}
	in := faultblob.New(mem, faultblob.Config{})
	var out bytes.Buffer
	listRecording(ctx, &out, in.Bucket(), "cam/")
	lists := 0
	for _, r := range in.Records() {
		if r.Op == faultblob.OpList {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("listed %d pages, want 1", lists)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != summaryObjects+3 {
		t.Fatalf("%d lines, want %d objects, \"...\" and the two playlists:\n%s", len(lines), summaryObjects, out.String())
	}
	for i, want := range []string{"cam/init-0.mp4 1125", "cam/seg-000000.m4s 100"} {
		if f := strings.Fields(lines[i]); len(f) < 2 || f[0]+" "+f[1] != want {
			t.Errorf("line %d: %q, want %q", i, lines[i], want)
		}
	}
	if strings.TrimSpace(lines[summaryObjects]) != "..." {
		t.Errorf("line %d: %q, want \"...\"", summaryObjects, lines[summaryObjects])
	}
	for i, want := range []string{"cam/index.m3u8 819", "cam/master.m3u8 178"} {
		if f := strings.Fields(lines[summaryObjects+1+i]); len(f) < 2 || f[0]+" "+f[1] != want {
			t.Errorf("playlist line %q, want %q", lines[summaryObjects+1+i], want)
		}
	}
}

// TestRecordWarnsWithoutVerbose: warnings reach standard error without -v
// (here the continuity gap of two MPEG-TS streams joined end to end), the
// debug log does not.
func TestRecordWarnsWithoutVerbose(t *testing.T) {
	b, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "joined.ts")
	if err := os.WriteFile(in, append(bytes.Clone(b), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, verbose := range []bool{false, true} {
		args := []string{"record", "-vod", in, filepath.Join(t.TempDir(), "out")}
		if verbose {
			args = append([]string{"record", "-v"}, args[1:]...)
		}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		log := errb.String()
		if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "continuity counter") {
			t.Errorf("verbose=%v: no warning of the continuity gap on stderr:\n%s", verbose, log)
		}
		if debug := strings.Contains(log, "level=DEBUG"); debug != verbose {
			t.Errorf("verbose=%v: debug log shown %v:\n%s", verbose, debug, log)
		}
	}
}

// TestRecordFileLiveNote: recording a file (read at full speed) into a
// live window says that the playlist will list its last segments only;
// with -vod it does not.
func TestRecordFileLiveNote(t *testing.T) {
	in := mediatest.Testdata("av.ts")
	for _, vod := range []bool{false, true} {
		args := []string{"record", in, filepath.Join(t.TempDir(), "out")}
		if vod {
			args = []string{"record", "-vod", in, filepath.Join(t.TempDir(), "out")}
		}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if note := strings.Contains(errb.String(), "live window"); note == vod {
			t.Errorf("vod=%v: live-window note shown %v: %q", vod, note, errb.String())
		}
	}
}
