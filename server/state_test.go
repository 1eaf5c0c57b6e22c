package server

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/livechunk/livechunk/internal/testkit/azurite"
	"github.com/livechunk/livechunk/internal/testkit/s3test"
	"github.com/livechunk/livechunk/internal/testkit/versitygw"
	"github.com/livechunk/livechunk/sink"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// TestStateVersionsFence creates the same state version from 8 goroutines
// at once, on every kind of store the lease relies on: exactly one create
// succeeds, the others are errStale, and the stored version is the
// winner's. This is the fencing of the stream lease.
func TestStateVersionsFence(t *testing.T) {
	ctx := context.Background()
	stores := map[string]func(t *testing.T) *blob.Bucket{
		"mem": func(t *testing.T) *blob.Bucket { return memblob.OpenBucket(nil) },
		"dir": func(t *testing.T) *blob.Bucket {
			b, err := sink.Open(ctx, filepath.Join(t.TempDir(), "store"))
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"gofakes3":  func(t *testing.T) *blob.Bucket { return s3test.Start(t, "media").Open(t, "media") },
		"versitygw": func(t *testing.T) *blob.Bucket { return versitygw.Start(t).Open(t, ctx, "media") },

		"azurite": func(t *testing.T) *blob.Bucket { return azurite.Start(t).Open(t, ctx, "media") },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			defer b.Close()
			ss := stateStore{b: b, prefix: "live/"}
			for v := uint64(1); v <= 5; v++ {
				var wg sync.WaitGroup
				var mu sync.Mutex
				var won []string
				for i := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						st := &ingestState{Owner: string(rune('a' + i)), Mode: modeChunks, Next: v}
						err := ss.create(ctx, "cam", v, st)
						switch {
						case err == nil:
							mu.Lock()
							won = append(won, st.Owner)
							mu.Unlock()
						case !errors.Is(err, errStale):
							t.Errorf("version %d: %v", v, err)
						}
					}()
				}
				wg.Wait()
				if len(won) != 1 {
					t.Fatalf("version %d: %d creates succeeded (%v), want 1", v, len(won), won)
				}
				got, gv, err := ss.latest(ctx, "cam")
				if err != nil || gv != v || got.Owner != won[0] || got.Next != v {
					t.Fatalf("latest: version %d owner %q (%v), want %d %q", gv, got.Owner, err, v, won[0])
				}
			}
		})
	}
}
