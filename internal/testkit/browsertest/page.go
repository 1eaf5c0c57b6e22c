package browsertest

import (
	"net/http"
	"strconv"

	"github.com/livechunk/livechunk/internal/player"
)

// Handler returns an http.Handler that serves the test player page at "/"
// (and "/index.html") and the embedded hls.js at "/hls.min.js". Mount it
// beside an hls.Handler on the same test server, for example
//
//	mux.Handle("/player/", http.StripPrefix("/player", browsertest.Handler()))
//	mux.Handle("/media/", http.StripPrefix("/media", hls.NewHandler(b, prefix)))
//
// and pass Options.PageURL = srv.URL + "/player/" to [PlayHLS]. The page
// references nothing but hls.min.js, relative to itself, so it works under
// any mount point that ends in a slash.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var body []byte
		switch r.URL.Path {
		case "/", "/index.html", "":
			body = []byte(pageHTML)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		case "/hls.min.js":
			body = player.HLSJS
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// pageHTML is the player page. It loads hls.js, and exposes two functions
// that PlayHLS calls through the DevTools protocol:
//
//   - livechunkPlay(src, config) attaches a new Hls(config) to the muted
//     <video>, loads src and calls play() once the manifest is parsed;
//   - livechunkState() returns a JSON-serializable snapshot of the video
//     element and of everything hls.js reported (see state in browsertest.go).
//
// The icon link keeps Chromium from requesting /favicon.ico.
const pageHTML = `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>livechunk browser test player</title>
<link rel="icon" href="data:,">
<script src="hls.min.js"></script>
</head>
<body>
<video id="video" muted playsinline width="640" height="360"></video>
<script>
(function () {
  "use strict";
  var MAX = 200;
  var st = {
    started: false,
    errors: [],
    fragsLoaded: 0,
    fragsBuffered: 0,
    fragURLs: [],
    levelLoads: 0,
    playlistSizes: [],
    live: null,
    levels: [],
    startTime: null,
    mediaError: ""
  };
  function str(v) { return v === undefined || v === null ? "" : String(v); }
  // Record the SourceBuffers hls.js creates, to report what each buffered.
  var sourceBuffers = [];
  if (window.MediaSource && MediaSource.prototype.addSourceBuffer) {
    var addSourceBuffer = MediaSource.prototype.addSourceBuffer;
    MediaSource.prototype.addSourceBuffer = function (mime) {
      var sb = addSourceBuffer.call(this, mime);
      if (sourceBuffers.length < MAX) { sourceBuffers.push({mime: str(mime), sb: sb}); }
      return sb;
    };
  }
  function ranges(r) {
    var out = [];
    for (var i = 0; i < r.length; i++) { out.push([r.start(i), r.end(i)]); }
    return out;
  }
  function pushErr(e) { if (st.errors.length < MAX) { st.errors.push(e); } }
  window.addEventListener("error", function (ev) {
    pushErr({type: "pageError", details: str(ev.message), fatal: true, reason: str(ev.filename) + ":" + str(ev.lineno)});
  });
  window.addEventListener("unhandledrejection", function (ev) {
    pushErr({type: "pageError", details: "unhandled rejection", fatal: true, reason: str(ev.reason)});
  });

  window.livechunkPlay = function (src, config) {
    if (st.started) { throw new Error("livechunkPlay called twice"); }
    st.started = true;
    var video = document.getElementById("video");
    video.muted = true;
    if (typeof Hls === "undefined") {
      pushErr({type: "pageError", details: "hls.js did not load", fatal: true});
      return "";
    }
    if (!Hls.isSupported()) {
      pushErr({type: "unsupported", details: "Hls.isSupported() is false: no MediaSource Extensions", fatal: true});
      return Hls.version;
    }
    var hls = new Hls(config || {});
    window.livechunkHls = hls;
    hls.on(Hls.Events.ERROR, function (ev, d) {
      var e = {
        type: str(d.type),
        details: str(d.details),
        fatal: !!d.fatal,
        reason: str(d.reason || (d.error && d.error.message) || d.err && d.err.message),
        url: str((d.frag && d.frag.url) || d.url || (d.context && d.context.url)),
        sn: d.frag ? str(d.frag.sn) : "",
        level: d.frag ? d.frag.level : (typeof d.level === "number" ? d.level : -1),
        responseCode: d.response && typeof d.response.code === "number" ? d.response.code : 0,
        mimeType: str(d.mimeType),
        sourceBuffer: str(d.sourceBufferName || d.parent),
        bufferLen: typeof d.buffer === "number" ? d.buffer : 0,
        currentTime: video.currentTime
      };
      pushErr(e);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, function (ev, d) {
      st.levels = (d.levels || []).map(function (l) {
        return {bitrate: l.bitrate || 0, width: l.width || 0, height: l.height || 0,
          videoCodec: str(l.videoCodec), audioCodec: str(l.audioCodec)};
      });
      var p = video.play();
      if (p && p.catch) {
        p.catch(function (err) {
          pushErr({type: "playError", details: str(err && err.name), fatal: true, reason: str(err && err.message)});
        });
      }
    });
    hls.on(Hls.Events.LEVEL_LOADED, function (ev, d) {
      st.levelLoads++;
      if (d.details) {
        st.live = !!d.details.live;
        if (st.playlistSizes.length < MAX) { st.playlistSizes.push(d.details.fragments.length); }
      }
    });
    hls.on(Hls.Events.FRAG_LOADED, function (ev, d) {
      st.fragsLoaded++;
      if (d.frag && st.fragURLs.length < MAX) { st.fragURLs.push(str(d.frag.url)); }
    });
    hls.on(Hls.Events.FRAG_BUFFERED, function () { st.fragsBuffered++; });
    video.addEventListener("playing", function () {
      if (st.startTime === null) { st.startTime = video.currentTime; }
    });
    video.addEventListener("error", function () {
      var me = video.error;
      st.mediaError = me ? (me.code + ": " + me.message) : "unknown";
      pushErr({type: "mediaElementError", details: st.mediaError, fatal: true});
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    return Hls.version;
  };

  window.livechunkState = function () {
    var v = document.getElementById("video");
    var buffered = ranges(v.buffered);
    var q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    var sbs = sourceBuffers.map(function (e) {
      var b = [];
      try { b = ranges(e.sb.buffered); } catch (err) { b = []; } // removed from its MediaSource
      return {mimeType: e.mime, buffered: b};
    });
    return {
      currentTime: v.currentTime,
      startTime: st.startTime === null ? -1 : st.startTime,
      duration: isFinite(v.duration) ? v.duration : -1,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      ended: v.ended,
      paused: v.paused,
      readyState: v.readyState,
      buffered: buffered,
      errors: st.errors,
      fragsLoaded: st.fragsLoaded,
      fragsBuffered: st.fragsBuffered,
      fragURLs: st.fragURLs,
      levelLoads: st.levelLoads,
      playlistSizes: st.playlistSizes,
      live: st.live === true,
      levels: st.levels,
      mediaError: st.mediaError,
      hlsVersion: typeof Hls === "undefined" ? "" : Hls.version,
      decodedFrames: q ? q.totalVideoFrames : 0,
      droppedFrames: q ? q.droppedVideoFrames : 0,
      audioBytes: typeof v.webkitAudioDecodedByteCount === "number" ? v.webkitAudioDecodedByteCount : 0,
      sourceBuffers: sbs
    };
  };
})();
</script>
</body>
</html>
`
