// Package s3test runs a real S3 protocol server (gofakes3 with its in-memory
// backend) on 127.0.0.1 for tests, and opens gocloud buckets on it through
// the AWS SDK, as production code would.
package s3test

import (
	"bytes"
	"io"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// Server is an in-process S3 server.
type Server struct {
	URL string
	srv *httptest.Server
	be  *backend
}

// backend wraps the memory backend with an optional delay per PUT.
type backend struct {
	gofakes3.Backend
	mu    sync.Mutex
	delay func(key string) time.Duration
}

func (b *backend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	b.mu.Lock()
	delay := b.delay
	b.mu.Unlock()
	// Read the body first so a delay models a slow store, not a slow client.
	data, err := io.ReadAll(input)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	if delay != nil {
		if d := delay(key); d > 0 {
			time.Sleep(d) // the store's latency, not test synchronization
		}
	}
	return b.Backend.PutObject(bucket, key, meta, bytes.NewReader(data), int64(len(data)), cond)
}

// Start starts a server with one bucket named bucket; it stops at test end.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	mem := s3mem.New()
	if err := mem.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	be := &backend{Backend: mem}
	srv := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(srv.Close)
	return &Server{URL: srv.URL, srv: srv, be: be}
}

// SetPutDelay makes every PUT wait delay(key) before it completes (nil: no
// delay), so uploads finish out of order.
func (s *Server) SetPutDelay(delay func(key string) time.Duration) {
	s.be.mu.Lock()
	s.be.delay = delay
	s.be.mu.Unlock()
}

// Open opens bucket on the server with path-style addressing and static
// credentials. The bucket closes at test end.
func (s *Server) Open(t testing.TB, bucket string) *blob.Bucket {
	t.Helper()
	return OpenBucket(t, s.srv, bucket)
}

// OpenBucket opens bucket on any S3 server running as srv, as
// [Server.Open] does; optFns adjust the client (for example its Retryer).
func OpenBucket(t testing.TB, srv *httptest.Server, bucket string, optFns ...func(*s3.Options)) *blob.Bucket {
	t.Helper()
	client := s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(srv.URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		HTTPClient:                 srv.Client(),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, optFns...)
	b, err := s3blob.OpenBucket(t.Context(), client, bucket, &s3blob.Options{
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
