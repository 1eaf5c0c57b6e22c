package sink

import (
	"context"
	"errors"
	"strings"
	"testing"

	"gocloud.dev/blob"
)

// TestDrivers checks which cloud drivers this build registered: all three
// by default, none with the livechunk_nocloud tag (.ci/run tests the package
// both ways), and that opening a left-out one fails with ErrInvalid naming
// the tag instead of gocloud's generic "no driver" error. (The tests of this
// package link the S3 driver themselves, for the in-process S3 server.)
func TestDrivers(t *testing.T) {
	mux := blob.DefaultURLMux()
	for scheme, tag := range leftOut {
		if driverBuilt[scheme] != !strings.Contains(buildTags, "nocloud") {
			t.Errorf("%s:// driver built = %v with tags %q", scheme, driverBuilt[scheme], buildTags)
		}
		if mux.ValidBucketScheme(scheme) {
			continue
		}
		_, err := Open(context.Background(), scheme+"://bucket")
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tag) {
			t.Errorf("Open(%s://bucket) = %v, want ErrInvalid naming %s", scheme, err, tag)
		}
	}
	for _, s := range []string{"file", "mem"} {
		if !mux.ValidBucketScheme(s) {
			t.Errorf("%s:// not registered", s)
		}
	}
}
