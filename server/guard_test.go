package server

import (
	"errors"
	"testing"

	"github.com/livechunk/livechunk/source"
)

// TestOpenGuarded: a source that panics while its start is read (a parser
// bug) is an error, so record releases the stream instead of leaving it
// marked as being pushed (every later push and chunk got 409).
func TestOpenGuarded(t *testing.T) {
	src, err := openGuarded(func() (source.Source, error) { panic("parser bug") })
	if src != nil || !errors.Is(err, source.ErrInvalid) {
		t.Errorf("panic while opening: %v, %v; want source.ErrInvalid", src, err)
	}
}
