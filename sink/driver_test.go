package sink

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// TestDrivers checks the driver contract of Open: this package registers
// the file and memory drivers and no cloud driver, and opening a URL whose
// driver the program does not link fails with a *DriverError (matching
// ErrInvalid) that names the import to add. This test binary links the S3
// driver itself (internal/testkit/s3test, for the in-process S3 server), as
// an application would; the GCS and Azure drivers it does not link.
func TestDrivers(t *testing.T) {
	ctx := context.Background()
	mux := blob.DefaultURLMux()
	for _, s := range []string{"file", "mem"} {
		if !mux.ValidBucketScheme(s) {
			t.Errorf("%s:// not registered", s)
		}
	}
	for _, s := range []string{"gs", "azblob"} {
		if mux.ValidBucketScheme(s) {
			t.Errorf("%s:// registered by the library", s)
		}
	}
	for _, tc := range []struct{ url, scheme, imp string }{
		{"gs://bucket", "gs", `import _ "gocloud.dev/blob/gcsblob"`},
		{"azblob://container?prefix=live/", "azblob", `import _ "gocloud.dev/blob/azureblob"`},
		{"GS://bucket", "gs", `import _ "gocloud.dev/blob/gcsblob"`},
		{"nosuchscheme://bucket", "nosuchscheme", ""},
	} {
		_, err := Open(ctx, tc.url)
		var de *DriverError
		if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) || de.Scheme != tc.scheme || de.URL != tc.url {
			t.Errorf("Open(%q) = %v, want a DriverError for %s:// matching ErrInvalid", tc.url, err, tc.scheme)
			continue
		}
		if !strings.Contains(err.Error(), tc.imp) || !strings.Contains(err.Error(), tc.url) {
			t.Errorf("Open(%q): %q does not name the URL and %s", tc.url, err, tc.imp)
		}
	}
	if !mux.ValidBucketScheme("s3") {
		t.Fatal("s3:// not registered by this test binary's import of s3blob")
	}
	b, err := Open(ctx, "s3://bucket?region=us-east-1")
	if err != nil {
		t.Fatalf("s3:// with the driver linked: %v", err)
	}
	b.Close()
}

// cloudSDKs are import path prefixes of the cloud drivers and their SDKs.
// gocloud.dev/blob itself links gRPC status codes and gax (for its own
// retry helper); those are not on this list.
var cloudSDKs = []string{
	"gocloud.dev/blob/s3blob",
	"gocloud.dev/blob/gcsblob",
	"gocloud.dev/blob/azureblob",
	"github.com/aws/",
	"cloud.google.com/go/storage",
	"github.com/Azure/",
}

// TestLibraryLinksNoCloudSDK lists the dependencies of every library
// package (not their tests, not cmd/ or bench/) and fails on any cloud
// driver or SDK: an application that embeds livechunk with a local or
// memory bucket links none of them.
func TestLibraryLinksNoCloudSDK(t *testing.T) {
	goTool := mediatest.RequireTool(t, "go")
	const mod = "github.com/livechunk/livechunk"
	lib := []string{mod, mod + "/chunker", mod + "/hls", mod + "/server", mod + "/sink", mod + "/source", mod + "/stitch"}
	out, err := exec.Command(goTool, append([]string{"list", "-e", "-deps", "-f", "{{.ImportPath}}"}, lib...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < len(lib) {
		t.Fatalf("go list listed %d packages", len(deps))
	}
	for _, d := range deps {
		for _, sdk := range cloudSDKs {
			if strings.HasPrefix(d, sdk) {
				t.Errorf("the library links %s", d)
			}
		}
	}
}
