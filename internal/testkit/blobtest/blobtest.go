// Package blobtest holds test helpers for gocloud.dev/blob buckets.
package blobtest

import (
	"context"
	"io"
	"testing"

	"gocloud.dev/blob"
)

// Keys returns the keys of the objects under prefix, in the bucket's
// listing order (byte order of the keys), failing t if the listing fails.
func Keys(t testing.TB, b *blob.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(context.Background())
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, obj.Key)
	}
}
