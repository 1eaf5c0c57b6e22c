package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// chunkpool reads the uploads that `chunks -raw` appended to RAW.tsv and
// prints one row per scenario (store, devices, pace) and binary with the
// latency quantiles of every upload of every run together.
func chunkpool(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("chunkpool: need RAW.tsv")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	type group struct {
		label, store, devices, pace string
		lats                        []time.Duration
		runs, errs                  int
	}
	var order []string
	groups := map[string]*group{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 8 {
			return fmt.Errorf("chunkpool: line %q: want 8 fields", sc.Text())
		}
		key := strings.Join([]string{c[1], c[2], c[3], c[0]}, "\t")
		g := groups[key]
		if g == nil {
			g = &group{label: c[0], store: c[1], devices: c[2], pace: c[3]}
			groups[key] = g
			order = append(order, key)
		}
		ms, err := strconv.ParseFloat(c[6], 64)
		if err != nil {
			return err
		}
		g.lats = append(g.lats, time.Duration(ms*1e6))
		if c[4] == "0" && c[5] == "0" {
			g.runs++
		}
		if c[7] != "200" {
			g.errs++
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Println("| store | devices | pace | binary | runs | uploads | p50 ms | p90 ms | p99 ms | max ms | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range order {
		g := groups[k]
		q := pct(g.lats)
		fmt.Printf("| %s | %s | %s | %s | %d | %d | %.0f | %.0f | %.0f | %.0f | %d |\n",
			g.store, g.devices, g.pace, g.label, g.runs, len(g.lats), q(0.5), q(0.9), q(0.99), q(1), g.errs)
	}
	return nil
}

var (
	logTime    = regexp.MustCompile(`^time=(\S+)`)
	logMsg     = regexp.MustCompile(`msg="([^"]*)"|msg=(\S+)`)
	logElapsed = regexp.MustCompile(` elapsed=(\S+)`)
	logPath    = regexp.MustCompile(` path=/ingest/([^/ ]+)/([0-9]+) `)
	logKey     = regexp.MustCompile(` key=(\S+)`)
	logStream  = regexp.MustCompile(` stream=(\S+)`)
)

// chunklog reads the log of `livechunk serve -v` (slog text: a line per
// request with its time in the server, a line per segment upload with its
// time, a line per ingest state stored) and splits each chunk upload's
// time in the server: the uploads of the segments it closed (their own
// elapsed times, summed: they run one after another on a directory and
// may overlap on S3), from the request's start to the last of them
// (reading the body, checking and feeding the chunk, the uploads), from
// there to the state stored (the playlist write, the state's create), and
// from there to the answer. The phases are from the log's times, whole
// milliseconds.
func chunklog(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("chunklog: need LOG")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	type pending struct {
		uploads  []time.Duration
		lastUp   time.Time
		stateAt  time.Time
		segments int
	}
	per := map[string]*pending{}
	var req, segUp, upSum, toLastUp, upToState, stateToEnd []time.Duration
	var puts, states, withUploads int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		tm := logTime.FindStringSubmatch(line)
		mm := logMsg.FindStringSubmatch(line)
		if tm == nil || mm == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, tm[1])
		if err != nil {
			continue
		}
		msg := mm[1] + mm[2]
		stream := ""
		if m := logStream.FindStringSubmatch(line); m != nil {
			stream = m[1]
		}
		p := per[stream]
		if p == nil && stream != "" {
			p = &pending{}
			per[stream] = p
		}
		switch msg {
		case "sink: uploaded":
			key := ""
			if m := logKey.FindStringSubmatch(line); m != nil {
				key = m[1]
			}
			e := elapsedOf(line)
			if p == nil || !strings.Contains(key, "/seg-") {
				continue
			}
			segUp = append(segUp, e)
			p.uploads = append(p.uploads, e)
			p.lastUp = at
			p.segments++
		case "ingest state stored":
			states++
			if p != nil {
				p.stateAt = at
			}
		case "http request":
			m := logPath.FindStringSubmatch(line)
			if m == nil || !strings.Contains(line, "method=PUT") {
				continue
			}
			puts++
			e := elapsedOf(line)
			req = append(req, e)
			p := per[m[1]]
			if p == nil {
				continue
			}
			start := at.Add(-e)
			if len(p.uploads) > 0 && !p.stateAt.IsZero() && !p.stateAt.Before(p.lastUp) {
				// After the change: the chunk's segments, then the state.
				withUploads++
				var sum time.Duration
				for _, u := range p.uploads {
					sum += u
				}
				upSum = append(upSum, sum)
				toLastUp = append(toLastUp, max(p.lastUp.Sub(start), 0))
				upToState = append(upToState, p.stateAt.Sub(p.lastUp))
				stateToEnd = append(stateToEnd, max(at.Sub(p.stateAt), 0))
			}
			*p = pending{}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	row := func(what string, d []time.Duration) {
		if len(d) == 0 {
			fmt.Printf("| %s | 0 | — | — | — |\n", what)
			return
		}
		q := pct(d)
		fmt.Printf("| %s | %d | %.1f | %.1f | %.1f |\n", what, len(d), q(0.5), q(0.9), q(0.99))
	}
	fmt.Printf("%d chunk uploads (PUT), %d segment uploads, %d ingest states stored, %d PUTs split into phases\n\n", puts, len(segUp), states, withUploads)
	fmt.Println("| in the server | n | p50 ms | p90 ms | p99 ms |")
	fmt.Println("|---|---|---|---|---|")
	row("PUT, request to answer", req)
	row("one segment upload", segUp)
	row("segment uploads during a PUT, summed", upSum)
	row("PUT start to its last segment uploaded", toLastUp)
	row("last segment uploaded to state stored", upToState)
	row("state stored to answer", stateToEnd)
	return nil
}

func elapsedOf(line string) time.Duration {
	m := logElapsed.FindStringSubmatch(line)
	if m == nil {
		return 0
	}
	d, _ := time.ParseDuration(m[1])
	return d
}
