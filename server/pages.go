package server

import (
	"html/template"
	"net/http"
	"sync"
)

// pageTmpl is parsed at its first use, not at start-up: every command of
// the CLI links this package, and parsing took 0.1 ms of each start.
var pageTmpl = sync.OnceValue(func() *template.Template { return template.Must(template.New("page").Parse(pageSrc)) })

const pageSrc = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · livechunk</title>
<style>
:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 0 auto; max-width: 1000px; padding: 1rem 1.5rem; }
header { display: flex; align-items: baseline; gap: 1rem; }
header a { color: inherit; text-decoration: none; font-weight: 700; }
h1 { font-size: 1.3rem; margin: .2rem 0; }
video { width: 100%; background: #000; border-radius: 6px; aspect-ratio: 16/9; }
.badge { display: inline-block; padding: .1rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 700; }
.live { background: #d22; color: #fff; } .ended, .vod { background: #777; color: #fff; } .stitching { background: #c80; color: #fff; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: .5rem; margin: .8rem 0; }
.stat { background: rgba(128,128,128,.12); border-radius: 6px; padding: .5rem .7rem; }
.stat b { display: block; font-size: 1.2rem; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: .9rem; }
td, th { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid rgba(128,128,128,.25); }
tr.playing { background: rgba(210,34,34,.15); }
#segs { max-height: 16rem; overflow: auto; }
code { font-size: .85rem; }
</style></head><body>
<header><a href="{{.Root}}">livechunk</a><h1>{{.Title}}</h1></header>
{{if .Stream}}
<video id="v" controls muted autoplay playsinline data-playlist="{{.Root}}live/{{.Stream}}/index.m3u8" data-api="{{.Root}}api/streams/{{.Stream}}"></video>
<div class="stats">
 <div class="stat">state <b id="state"><span class="badge">…</span></b></div>
 <div class="stat">latency <b id="latency">–</b></div>
 <div class="stat">position <b id="pos">–</b></div>
 <div class="stat">segments <b id="nsegs">–</b></div>
 <div class="stat">resolution <b id="res">–</b></div>
</div>
<p><code id="src"></code> · <span id="vod"></span></p>
<div id="segs"><table><thead><tr><th>#</th><th>start</th><th>duration</th><th>wall clock</th></tr></thead><tbody id="seglist"></tbody></table></div>
<script src="{{.Root}}assets/hls.min.js"></script>
<script>
// The page names every URL it uses in attributes, relative to itself:
// it works wherever the server is mounted (see Config.BasePath).
const $ = (id) => document.getElementById(id);
const v = $("v");
const url = new URL(v.dataset.playlist, location.href).href;
$("src").textContent = url;
let hls = null, frags = [];
window.playerErrors = [];
function startHls() {
  hls = new Hls({ liveDurationInfinity: true });
  hls.on(Hls.Events.ERROR, (_, d) => {
    if (d.fatal && d.type === Hls.ErrorTypes.NETWORK_ERROR && d.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR) {
      // A new stream's playlist appears once its first segment is
      // durable (later with -start-duration): until then it is not
      // found. Try again.
      hls.destroy();
      setTimeout(startHls, 1000);
      return;
    }
    window.playerErrors.push(d.type + ":" + d.details + (d.fatal ? " (fatal)" : ""));
  });
  hls.on(Hls.Events.LEVEL_LOADED, (_, d) => { frags = d.details.fragments; renderSegs(); });
  hls.loadSource(url);
  hls.attachMedia(v);
}
if (window.Hls && Hls.isSupported()) {
  startHls();
} else if (v.canPlayType("application/vnd.apple.mpegurl")) {
  v.src = url; // native HLS (Safari)
}
v.play().catch(() => {});
function fmt(s) { return isFinite(s) ? s.toFixed(1) + " s" : "–"; }
function renderSegs() {
  $("nsegs").textContent = frags.length;
  const rows = frags.slice(-200).map((f) => {
    const wall = f.programDateTime ? new Date(f.programDateTime).toLocaleTimeString() : "";
    const playing = v.currentTime >= f.start && v.currentTime < f.start + f.duration;
    return "<tr" + (playing ? " class=playing" : "") + "><td>" + f.sn + "</td><td>" + f.start.toFixed(2) +
      "</td><td>" + f.duration.toFixed(3) + "</td><td>" + wall + "</td></tr>";
  });
  $("seglist").innerHTML = rows.join("");
}
async function poll() {
  try {
    const r = await fetch(v.dataset.api, { cache: "no-store" });
    const s = r.ok ? await r.json() : null;
    if (s) {
      $("state").innerHTML = '<span class="badge ' + s.state + '">' + s.state + "</span>";
      $("vod").innerHTML = s.vod ? '<a href="' + s.vod + '">download the stitched MP4</a>' : "";
    }
  } catch (e) {}
  const lat = hls && hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : NaN;
  $("latency").textContent = fmt(lat);
  $("pos").textContent = fmt(v.currentTime);
  $("res").textContent = v.videoWidth ? v.videoWidth + "×" + v.videoHeight : "–";
  renderSegs();
}
setInterval(poll, 1000); poll();
</script>
{{else}}
<p>Streams recorded by this server. Upload chunks with <code>PUT {{.Base}}/ingest/NAME/N</code> or push MPEG-TS with
<code>ffmpeg -re -i IN -c copy -f mpegts http://HOST{{.Base}}/ingest/NAME</code>.</p>
<table><thead><tr><th>stream</th><th>state</th><th>segments</th><th>duration</th><th></th></tr></thead>
<tbody>{{range .Streams}}<tr><td><a href="{{.Watch}}">{{.Name}}</a></td><td><span class="badge {{.State}}">{{.State}}</span></td>
<td>{{.Segments}}</td><td>{{printf "%.1f" .Seconds}} s</td><td>{{if .VOD}}<a href="{{.VOD}}">MP4</a>{{end}}</td></tr>
{{else}}<tr><td colspan="5">No streams yet.</td></tr>{{end}}</tbody></table>
{{if .Next}}<p><a href="?after={{.Next}}">more streams</a></p>{{end}}
{{end}}
</body></html>
`

type pageData struct {
	Title string
	// Root is the server's root (Config.BasePath + "/") relative to the
	// page: the pages link relatively, and so work wherever the server is
	// mounted. The links to streams are those of StreamInfo.
	Root    string
	Base    string // Config.BasePath, for the text of the page
	Stream  string
	Streams []StreamInfo
	Next    string // the name after which the next page of Streams starts
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("stream")
	if !ValidStreamName(name) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = pageTmpl().Execute(w, pageData{Title: name, Root: "../", Base: s.cfg.BasePath, Stream: name})
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	// One page of streams (?after=NAME), with a link to the next.
	list, next, err := s.Streams(r.Context(), StreamsPage{After: r.URL.Query().Get("after")})
	if err != nil {
		http.Error(w, "listing streams failed", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = pageTmpl().Execute(w, pageData{Title: "streams", Root: "./", Base: s.cfg.BasePath, Streams: list, Next: next})
}
