package source_test

import (
	"fmt"
	"io"
	"log"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/source"
)

// Open detects the container; Next yields access units in decode order.
func ExampleOpen() {
	src, err := source.Open("../testdata/bframes.mp4", source.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	samples, idr := 0, 0
	for {
		s, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		samples++
		if chunker.IsIDR(s.NALUs) {
			idr++
		}
	}
	info := src.Info()
	fmt.Printf("%s %dx%d, %d ticks/s: %d samples, %d IDR\n",
		info.Format, info.Width, info.Height, info.Timescale, samples, idr)
	// Output: mp4 320x240, 15360 ticks/s: 120 samples, 4 IDR
}
