package main

import (
	"bytes"
	"strings"
	"testing"

	"gocloud.dev/blob"
)

// TestDrivers checks which cloud drivers the command linked: all three by
// default, none with the livechunk_nocloud tag (.ci/run tests the command
// both ways); and that a URL of a driver left out fails with the library's
// error naming the import, to which the command adds the build tag. (This
// test binary links the S3 driver itself, through internal/testkit/s3test,
// for the in-process S3 server.)
func TestDrivers(t *testing.T) {
	mux := blob.DefaultURLMux()
	for scheme, tag := range driverTags {
		if driverLinked[scheme] != !strings.Contains(buildTags, "nocloud") {
			t.Errorf("%s:// driver linked = %v with tags %q", scheme, driverLinked[scheme], buildTags)
		}
		if driverLinked[scheme] && !mux.ValidBucketScheme(scheme) {
			t.Errorf("%s:// driver linked but not registered", scheme)
		}
		if mux.ValidBucketScheme(scheme) {
			continue
		}
		var out, errb bytes.Buffer
		code := runContext(t.Context(), []string{"record", "-sample", scheme + "://bucket"}, &out, &errb)
		if code != exitFailure || !strings.Contains(errb.String(), `import _ "gocloud.dev/blob/`) || !strings.Contains(errb.String(), tag) {
			t.Errorf("record to %s://bucket: exit %d, %q; want a failure naming the import and %s", scheme, code, errb.String(), tag)
		}
	}
}
