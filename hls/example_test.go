package hls_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/livechunk/livechunk/hls"
	"gocloud.dev/blob/memblob"
)

// A VOD playlist of three fMP4 segments; EXTINF comes from exact tick
// durations and the version from the features used.
func ExampleMediaPlaylist_Render() {
	p := hls.MediaPlaylist{Type: hls.VOD, IndependentSegments: true, Ended: true}
	for i, ticks := range []int64{450000, 450000, 225225} { // 90 kHz
		p.Segments = append(p.Segments, hls.Segment{
			URI: fmt.Sprintf("seg-%06d.m4s", i), Duration: ticks, Timescale: 90000, Map: "init-0.mp4",
		})
	}
	fmt.Print(string(p.Render()))
	// Output:
	// #EXTM3U
	// #EXT-X-VERSION:6
	// #EXT-X-TARGETDURATION:5
	// #EXT-X-MEDIA-SEQUENCE:0
	// #EXT-X-PLAYLIST-TYPE:VOD
	// #EXT-X-INDEPENDENT-SEGMENTS
	// #EXT-X-MAP:URI="init-0.mp4"
	// #EXTINF:5.000,
	// seg-000000.m4s
	// #EXTINF:5.000,
	// seg-000001.m4s
	// #EXTINF:2.5025,
	// seg-000002.m4s
	// #EXT-X-ENDLIST
}

// A Handler serves a bucket's playlists and segments to players, with the
// right content types, caching, CORS and Range support.
func ExampleHandler() {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	if err := b.WriteAll(ctx, "live/cam/index.m3u8", []byte("#EXTM3U\n"), nil); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/hls/", hls.NewHandler(b, "live/")))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/hls/cam/index.m3u8")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), len(body), "bytes")

	resp, err = http.Get(srv.URL + "/hls/../secret")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode) // nothing outside the prefix is reachable
	// Output:
	// 200 application/vnd.apple.mpegurl 8 bytes
	// 404
}
