package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/livechunk/livechunk/server"
	"gocloud.dev/blob/memblob"
)

// A phone uploads its closed MP4 chunks with PUT /ingest/{stream}/{n} and
// ends the broadcast; viewers get /live/{stream}/index.m3u8 while it runs
// and /vod/{stream}.mp4 after it.
func ExampleNew() {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	srv, err := server.New(server.Config{Bucket: b, Stitch: server.StitchMP4})
	if err != nil {
		log.Fatal(err)
	}
	web := httptest.NewServer(srv)
	defer web.Close()

	send := func(method, path, file string) int {
		var req *http.Request
		if file == "" {
			req, err = http.NewRequest(method, web.URL+path, nil)
		} else {
			f, ferr := os.Open(file)
			if ferr != nil {
				log.Fatal(ferr)
			}
			defer f.Close()
			req, err = http.NewRequest(method, web.URL+path, f)
		}
		if err != nil {
			log.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fmt.Println("chunk 1:", send("PUT", "/ingest/phone/1", "../testdata/chunk1.mp4")) // early: buffered
	fmt.Println("chunk 0:", send("PUT", "/ingest/phone/0", "../testdata/chunk0.mp4"))
	fmt.Println("end:", send("POST", "/ingest/phone/end", ""))

	// Shutdown waits for the stream to be finished and stitched.
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("playlist:", send("GET", "/live/phone/index.m3u8", ""))
	fmt.Println("vod:", send("GET", "/vod/phone.mp4", ""))
	// Output:
	// chunk 1: 200
	// chunk 0: 200
	// end: 200
	// playlist: 200
	// vod: 200
}

// An application mounts the Server under /studio/ in its own ServeMux,
// behind its own middleware (here, one that asks for a session cookie).
// Every URL the Server makes, in its pages and its JSON, names /studio/.
func ExampleNew_basePath() {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	srv, err := server.New(server.Config{Bucket: b, BasePath: "/studio"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "the application's home") })
	mux.Handle("/studio/", srv) // the Server takes /studio off itself
	loggedIn := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, err := r.Cookie("session"); err != nil || c.Value != "ann" {
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	web := httptest.NewServer(loggedIn(mux))
	defer web.Close()

	do := func(method, path string, body io.Reader) *http.Response {
		req, err := http.NewRequest(method, web.URL+path, body)
		if err != nil {
			log.Fatal(err)
		}
		req.AddCookie(&http.Cookie{Name: "session", Value: "ann"})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}
	chunk, err := os.Open("../testdata/chunk0.mp4")
	if err != nil {
		log.Fatal(err)
	}
	defer chunk.Close()
	do("PUT", "/studio/ingest/phone/0", chunk).Body.Close()

	resp := do("GET", "/studio/api/streams", nil)
	defer resp.Body.Close()
	var streams []server.StreamInfo
	if err := json.NewDecoder(resp.Body).Decode(&streams); err != nil {
		log.Fatal(err)
	}
	fmt.Println("streams:", resp.StatusCode, streams[0].Watch, streams[0].Playlist)
	for _, path := range []string{streams[0].Watch, streams[0].Playlist, "/studio/assets/hls.min.js"} {
		resp := do("GET", path, nil)
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	anon, err := http.Get(web.URL + "/studio/")
	if err != nil {
		log.Fatal(err)
	}
	anon.Body.Close()
	fmt.Println("without a session:", anon.StatusCode)
	// Output:
	// streams: 200 /studio/watch/phone /studio/live/phone/index.m3u8
	// /studio/watch/phone 200
	// /studio/live/phone/index.m3u8 200
	// /studio/assets/hls.min.js 200
	// without a session: 401
}
