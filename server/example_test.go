package server_test

import (
	"context"
	"fmt"
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
