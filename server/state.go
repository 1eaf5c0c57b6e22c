package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
)

// The ingest state of every stream lives in the bucket, under
// Config.Prefix + ".ingest/" + stream + "/" (a name no stream can have, and
// no playback path serves):
//
//	state-00000000000000000042.json  version 42 of the stream's state
//	chunk-0000017-9f86d081884c7d65   chunk 17, received ahead of its turn
//	                                 (named by its bytes too: a node that
//	                                 lost the stream cannot replace it)
//
// A state version is created with the store's conditional create
// (blob.WriterOptions.IfNotExist), never overwritten: the node that
// creates version v+1 is the one that went on from version v, and a node
// whose create fails learns that another one has taken the stream over
// (errStale). The version numbers are the lease's fencing tokens.
//
// A create only fences while the version is there, so versions are
// deleted late: a node that holds version k creates k+1 only while its
// lease runs (stream.commit checks), and that lease began when k was
// created, no later than k+1; so once version k+1 is older than a lease
// and leaseMargin, nobody can still try to create it, and it may go (see
// versionsToDelete). Every node must use the same lease duration.
const ingestDir = ".ingest/"

// digest is a chunk's SHA-256, hex in JSON.
type digest [sha256.Size]byte

func (d digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

func (d *digest) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(d) {
		return fmt.Errorf("server: bad chunk digest %q", b)
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// Modes of a stream's input.
const (
	modeChunks = "chunks" // numbered chunk uploads
	modePush   = "push"   // a streamed MPEG-TS body (or an in-process source)
)

// ingestState is one version of a stream's ingest state: everything a
// node needs to go on with the stream exactly where the last one stopped.
type ingestState struct {
	// Owner holds the stream until LeaseUntil (zero: given up): the node
	// ID, and the URL where other nodes reach it ("" when it takes no
	// forwarded chunks).
	Owner      string    `json:"owner"`
	OwnerURL   string    `json:"owner_url,omitempty"`
	LeaseUntil time.Time `json:"lease_until"`
	Mode       string    `json:"mode"`
	// Active is the time of the last input (a chunk, a pushed body);
	// Config.IdleTimeout after it the stream ends by itself.
	Active time.Time `json:"active"`
	// Ended: the stream takes no more input (its playlist gets or has
	// EXT-X-ENDLIST); Done: that is written and the VOD file stitched.
	Ended bool `json:"ended,omitempty"`
	Done  bool `json:"done,omitempty"`

	// The ordering window of chunk uploads: the next chunk to feed, how
	// many were received, the ones given up (the last maxGaps gaps; the
	// numbers below Forgotten are no longer known either way), the
	// digests of the recent ones (for retries), and the ones received
	// ahead of their turn, journaled as chunk objects.
	Next      uint64            `json:"next"`
	Received  uint64            `json:"received"`
	Missing   []span            `json:"missing,omitempty"`
	Forgotten uint64            `json:"forgotten,omitempty"`
	Sums      map[uint64]digest `json:"sums,omitempty"`
	Pending   []uint64          `json:"pending,omitempty"`
	// Where the joined chunks and the chunker stand after the last chunk
	// fed (nil before the first).
	Source  *source.ChunksState   `json:"source,omitempty"`
	Chunker *chunker.Continuation `json:"chunker,omitempty"`
}

// held reports whether the state's owner still holds the stream at now:
// its lease has not ended (a margin after, see leaseMargin) and was not
// given up (a zero LeaseUntil).
func (s *ingestState) held(now time.Time) bool {
	return !s.LeaseUntil.IsZero() && now.Before(s.LeaseUntil.Add(leaseMargin))
}

// errStale: a state version could not be created because another node
// created it first: it has taken the stream over, and this node's view of
// the stream is out of date.
var errStale = errors.New("the stream was taken over by another node")

// stateStore reads and writes the ingest state of the streams under a
// prefix of a bucket.
type stateStore struct {
	b      *blob.Bucket
	prefix string // Config.Prefix
}

func (ss stateStore) dir(stream string) string { return ss.prefix + ingestDir + stream + "/" }

func (ss stateStore) stateKey(stream string, v uint64) string {
	return fmt.Sprintf("%sstate-%020d.json", ss.dir(stream), v)
}

func (ss stateStore) chunkKey(stream string, n uint64, sum digest) string {
	return fmt.Sprintf("%schunk-%07d-%x", ss.dir(stream), n, sum[:8])
}

// stateVersion is a stored version of a stream's state, with the time
// the store gives its object.
type stateVersion struct {
	v   uint64
	mod time.Time
}

// versions lists the stream's stored state versions, oldest first (the
// keys' fixed-width numbers sort as numbers).
func (ss stateStore) versions(ctx context.Context, stream string) ([]stateVersion, error) {
	var vs []stateVersion
	it := ss.b.List(&blob.ListOptions{Prefix: ss.dir(stream) + "state-"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return vs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing the ingest state of %q: %w", stream, err)
		}
		num, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, ss.dir(stream)+"state-"), ".json")
		if v, err := strconv.ParseUint(num, 10, 64); ok && err == nil {
			vs = append(vs, stateVersion{v, obj.ModTime})
		}
	}
}

// latest returns the stream's newest state and its version; version 0
// (and a zero state) when it has none.
func (ss stateStore) latest(ctx context.Context, stream string) (ingestState, uint64, error) {
	vs, err := ss.versions(ctx, stream)
	if err != nil || len(vs) == 0 {
		return ingestState{}, 0, err
	}
	v := vs[len(vs)-1].v
	data, err := ss.b.ReadAll(ctx, ss.stateKey(stream, v))
	if err != nil {
		return ingestState{}, 0, fmt.Errorf("reading the ingest state of %q: %w", stream, err)
	}
	var st ingestState
	if err := json.Unmarshal(data, &st); err != nil {
		return ingestState{}, 0, fmt.Errorf("the ingest state of %q (version %d) is unreadable: %w", stream, v, err)
	}
	return st, v, nil
}

// create writes version v of the stream's state, unless it exists
// (errStale). A successful create makes it the stream's state.
func (ss stateStore) create(ctx context.Context, stream string, v uint64, st *ingestState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	err = sink.CreateExclusive(ctx, ss.b, ss.stateKey(stream, v), data, &blob.WriterOptions{ContentType: "application/json"})
	if errors.Is(err, sink.ErrExists) {
		return fmt.Errorf("%w (state version %d exists)", errStale, v)
	}
	if err != nil {
		return fmt.Errorf("writing the ingest state of %q: %w", stream, err)
	}
	return nil
}

// prune deletes the stream's state versions before v that are old
// enough (see ingestDir; the store's clock ages them: the modification
// time of version v, which the caller just created, is the store's now).
// Best effort: an old version left behind costs a listing entry, nothing
// else.
func (ss stateStore) prune(ctx context.Context, stream string, v uint64, lease time.Duration) {
	vs, err := ss.versions(ctx, stream)
	if err != nil {
		return
	}
	i := slices.IndexFunc(vs, func(sv stateVersion) bool { return sv.v == v })
	if i < 0 {
		return
	}
	now := vs[i].mod
	for _, old := range vs[:i] {
		if now.Sub(old.mod) > lease+leaseMargin {
			_ = ss.b.Delete(ctx, ss.stateKey(stream, old.v))
		}
	}
}

// putChunk journals chunk n of the stream, received ahead of its turn.
func (ss stateStore) putChunk(ctx context.Context, stream string, n uint64, sum digest, body io.Reader) error {
	if err := ss.b.Upload(ctx, ss.chunkKey(stream, n, sum), body, &blob.WriterOptions{ContentType: "video/mp4"}); err != nil {
		return fmt.Errorf("journaling chunk %d of %q: %w", n, stream, err)
	}
	return nil
}

// getChunk reads back a journaled chunk into an upload of sp and checks it
// again; its digest must be the one recorded.
func (ss stateStore) getChunk(ctx context.Context, sp *spooler, lim chunkLimits, stream string, n uint64, sum digest) (*chunk, error) {
	r, err := ss.b.NewReader(ctx, ss.chunkKey(stream, n, sum), nil)
	if err != nil {
		return nil, fmt.Errorf("reading journaled chunk %d of %q: %w", n, stream, err)
	}
	defer r.Close()
	u, err := sp.spool(nil, r, r.Size(), max(r.Size(), 0))
	if err != nil {
		return nil, fmt.Errorf("reading journaled chunk %d of %q: %w", n, stream, err)
	}
	if u.sum != sum {
		u.close()
		return nil, fmt.Errorf("journaled chunk %d of %q does not have the bytes received", n, stream)
	}
	c, err := checkChunk(u, lim)
	if err != nil {
		u.close()
		return nil, fmt.Errorf("journaled chunk %d of %q: %w", n, stream, err)
	}
	return c, nil
}

func (ss stateStore) deleteChunk(ctx context.Context, stream string, n uint64, sum digest) {
	_ = ss.b.Delete(ctx, ss.chunkKey(stream, n, sum))
}

// streams lists the names of the streams that have an ingest state.
func (ss stateStore) streams(ctx context.Context) ([]string, error) {
	var names []string
	it := ss.b.List(&blob.ListOptions{Prefix: ss.prefix + ingestDir, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		if n := strings.TrimSuffix(strings.TrimPrefix(obj.Key, ss.prefix+ingestDir), "/"); obj.IsDir && ValidStreamName(n) {
			names = append(names, n)
		}
	}
}
