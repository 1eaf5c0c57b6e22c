package main

import (
	"bufio"
	"fmt"
	"html"
	"os"
	"strconv"
	"strings"
)

// chart reads the rows "group<TAB>tool<TAB>MB/s" that bench/run.sh writes
// (tools "ffmpeg", "livechunk", "livechunk-nocloud", "library" and a floor
// such as "cp" or "cat") and draws one horizontal bar per row, grouped,
// with each livechunk bar labelled with its throughput as a multiple of
// ffmpeg's in the same group.
func chart(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("chart: need RESULTS.tsv and OUT.svg")
	}
	type row struct {
		group, tool string
		mbps        float64
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			continue
		}
		v, err := strconv.ParseFloat(fields[2], 64)
		if err != nil {
			return fmt.Errorf("chart: %q: %v", sc.Text(), err)
		}
		rows = append(rows, row{fields[0], fields[1], v})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	ffmpeg := map[string]float64{}
	top := 0.0
	for _, r := range rows {
		if r.tool == "ffmpeg" {
			ffmpeg[r.group] = r.mbps
		}
		top = max(top, r.mbps)
	}
	const (
		left, barH, gap, groupGap, width = 190, 16, 4, 18, 760
	)
	plot := float64(width - left - 150)
	colors := map[string]string{"ffmpeg": "#8c8c8c", "livechunk": "#2b6cb0", "livechunk-nocloud": "#63a4e0", "library": "#9cc6ee"}
	var b strings.Builder
	y := 40
	prev := ""
	var body strings.Builder
	for _, r := range rows {
		if r.group != prev {
			if prev != "" {
				y += groupGap
			}
			fmt.Fprintf(&body, "<text x=\"8\" y=\"%d\" font-weight=\"bold\">%s</text>\n", y+12, html.EscapeString(r.group))
			y += barH + gap
			prev = r.group
		}
		w := r.mbps / top * plot
		c, ok := colors[r.tool]
		if !ok {
			c = "#c7c7c7"
		}
		label := fmt.Sprintf("%.0f MB/s", r.mbps)
		if ff := ffmpeg[r.group]; (strings.HasPrefix(r.tool, "livechunk") || r.tool == "library") && ff > 0 {
			label += fmt.Sprintf("  (%.2f× ffmpeg)", r.mbps/ff)
		}
		fmt.Fprintf(&body, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left-6, y+12, html.EscapeString(r.tool))
		fmt.Fprintf(&body, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", left, y, w, barH, c)
		fmt.Fprintf(&body, "<text x=\"%.1f\" y=\"%d\">%s</text>\n", float64(left)+w+6, y+12, html.EscapeString(label))
		y += barH + gap
	}
	height := y + 30
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", width, height)
	fmt.Fprintf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n")
	fmt.Fprintf(&b, "<text x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Throughput (input MB per second of wall time, median; longer is faster)</text>\n")
	b.WriteString(body.String())
	fmt.Fprintf(&b, "<text x=\"8\" y=\"%d\" fill=\"#555\">bench/run.sh: HLS VOD remux (record) and faststart MP4 (stitch); cp/cat = copying the same bytes; library = Record in a process that ran it before</text>\n", height-10)
	b.WriteString("</svg>\n")
	return os.WriteFile(args[1], []byte(b.String()), 0o644)
}
