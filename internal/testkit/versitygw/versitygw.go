// Package versitygw runs a versitygw S3 gateway (posix backend) on
// 127.0.0.1 for tests: a real S3 server in another process, which a test
// can kill and start again on the same data.
package versitygw

import (
	"context"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
	"gocloud.dev/blob"
)

// Gateway is a running versitygw.
type Gateway struct {
	t        testing.TB
	bin      string
	root     string
	addr     string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      mediatest.SyncBuffer
	Access   string // its root access key
	Secret   string // and secret
	Endpoint string // http://127.0.0.1:port
}

// find returns the versitygw binary: on PATH or in GOPATH/bin (where go
// install puts it). Without it the test is skipped, unless
// LIVECHUNK_REQUIRE_TOOLS is set.
func find(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return mediatest.RequireTool(t, "versitygw")
}

// Start runs a gateway on a free port with its data in a temporary
// directory; it is killed at the test's end.
func Start(t testing.TB) *Gateway {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := &Gateway{t: t, bin: find(t), root: t.TempDir(), addr: addr,
		Access: "livechunktest", Secret: "livechunk-test-secret", Endpoint: "http://" + addr}
	g.Restart()
	t.Cleanup(g.Kill)
	return g
}

// Restart runs the gateway (again, on the same data and port) and waits
// until it accepts connections.
func (g *Gateway) Restart() {
	g.t.Helper()
	g.cmd = exec.Command(g.bin, "--port", g.addr, "--quiet", "posix", g.root)
	g.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+g.Access, "ROOT_SECRET_KEY="+g.Secret)
	g.cmd.Stdout, g.cmd.Stderr = &g.log, &g.log
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(g.cmd, g.exited)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-g.exited:
			g.t.Fatalf("versitygw exited: %s", g.log.String())
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("versitygw did not listen on %s: %v\n%s", g.addr, err, g.log.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the port: an observable condition
	}
}

// Kill kills the gateway (SIGKILL, as a crash or a network cut would) and
// waits for it to exit.
func (g *Gateway) Kill() {
	if g.cmd == nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.exited
	g.cmd = nil
}

// CreateBucket creates a bucket through the S3 API.
func (g *Gateway) CreateBucket(ctx context.Context, name string) {
	g.t.Helper()
	c := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(g.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(g.Access, g.Secret, ""),
	})
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		g.t.Fatalf("create bucket: %v\n%s", err, g.log.String())
	}
}

// URL returns the store URL of bucket, as `livechunk -store` and sink.Open
// take it.
func (g *Gateway) URL(bucket string) string {
	return "s3://" + bucket + "?region=us-east-1&use_path_style=true&disable_https=true" +
		"&request_checksum_calculation=when_required&response_checksum_validation=when_required&endpoint=" + g.Endpoint
}

// Env returns the environment of a process that opens URL: the gateway's
// credentials, and no AWS configuration of the machine's.
func (g *Gateway) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + g.Access, "AWS_SECRET_ACCESS_KEY=" + g.Secret, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(g.root, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(g.root, "none")}
}

// SetEnv sets Env in this process for the test (t.Setenv).
func (g *Gateway) SetEnv(t *testing.T) {
	for _, kv := range g.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Open creates the bucket, sets the gateway's credentials in the test's
// environment (the s3 driver reads them there) and opens the bucket
// through sink.Open; it is closed when the test ends.
func (g *Gateway) Open(t *testing.T, ctx context.Context, bucket string) *blob.Bucket {
	t.Helper()
	g.CreateBucket(ctx, bucket)
	g.SetEnv(t)
	b, err := sink.Open(ctx, g.URL(bucket))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Log returns what the gateway printed.
func (g *Gateway) Log() string { return g.log.String() }
