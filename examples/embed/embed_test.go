package embed

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/sink"
)

// testdata is the directory of the fixtures, in the livechunk checkout two
// directories up.
var testdata = filepath.Join("..", "..", "testdata")

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestMany(t *testing.T) {
	ctx := testCtx(t)
	bucket, err := sink.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	err = Many(ctx, bucket, ManyConfig{
		Input:   filepath.Join(testdata, "av.mp4"),
		Streams: 20,
		Repeat:  4,
		Speed:   4,
		Log:     testLog{t},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testLog writes lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func TestEncoder(t *testing.T) {
	ctx := testCtx(t)
	bucket, err := sink.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	st, err := Encoder(ctx, bucket, EncoderConfig{
		Input:  filepath.Join(testdata, "av.mp4"),
		Repeat: 2,
		Speed:  1, // real time, as encoders deliver
		Log:    testLog{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Chunker.Segments != 2 || st.Chunker.Samples != 60 {
		t.Errorf("%d segments, %d pictures; want 2 segments of 1 s, 60 pictures", st.Chunker.Segments, st.Chunker.Samples)
	}
}

func TestErrors(t *testing.T) {
	err := Errors(testCtx(t), ErrorsConfig{
		Input: filepath.Join(testdata, "bframes.mp4"),
		Dir:   t.TempDir(),
		Log:   testLog{t},
	})
	if err != nil {
		t.Fatal(err)
	}
}
