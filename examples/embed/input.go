package embed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
)

// open opens path as a source that plays it repeat times, one continuous
// stream (the copies joined as a phone's chunks are), and returns the
// function that closes it.
func open(path string, repeat int) (source.Source, func() error, error) {
	if repeat <= 1 {
		f, err := source.Open(path, source.Options{})
		if err != nil {
			return nil, nil, err
		}
		return f, f.Close, nil
	}
	c, err := source.OpenChunks(slices.Repeat([]string{path}, repeat), source.Options{})
	if err != nil {
		return nil, nil, err
	}
	return c, c.Close, nil
}

// inputCounts is what an input holds: its pictures and AAC frames, and its
// video's duration (from the first picture's decode time to the end of the
// last picture) in ticks of its timescale.
type inputCounts struct {
	pictures, audio int64
	timescale       uint32
	ticks           int64
}

func (c inputCounts) seconds() float64 { return float64(c.ticks) / float64(c.timescale) }

// measure reads path (played repeat times) once and counts what it holds.
func measure(path string, repeat int) (inputCounts, error) {
	src, closeSrc, err := open(path, repeat)
	if err != nil {
		return inputCounts{}, err
	}
	defer closeSrc()
	info := src.Info()
	c := inputCounts{timescale: info.Timescale}
	var last, lastDur, step int64
	for {
		pk, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return inputCounts{}, err
		}
		if pk.Kind == source.KindAudio {
			c.audio++
			continue
		}
		v := pk.Video
		if c.pictures > 0 {
			step = v.DTS - last
			if info.WrapBits > 0 { // MPEG-TS time wraps at 2^33 ticks
				step &= 1<<info.WrapBits - 1
			}
			c.ticks += step
		}
		c.pictures++
		last, lastDur = v.DTS, v.Duration
	}
	if c.pictures == 0 {
		return inputCounts{}, errors.New("embed: the input has no pictures")
	}
	if lastDur <= 0 {
		lastDur = step
	}
	c.ticks += lastDur
	if c.timescale == 0 || c.ticks <= 0 {
		return inputCounts{}, fmt.Errorf("embed: %s: no duration", path)
	}
	return c, nil
}

// OpenStore opens the bucket named by store (a directory or a URL such as
// mem://), or, when store is "", a new temporary directory named after
// name. The returned function closes the bucket and removes that
// directory.
func OpenStore(ctx context.Context, store, name string) (*blob.Bucket, func(), error) {
	cleanup := func() {}
	if store == "" {
		dir, err := os.MkdirTemp("", "livechunk-"+name+"-")
		if err != nil {
			return nil, nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		store = dir
	}
	bucket, err := sink.Open(ctx, store)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return bucket, func() { bucket.Close(); cleanup() }, nil
}
