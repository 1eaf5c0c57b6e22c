package source

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestMoovNestingBounded feeds a moov whose trak boxes nest 100,000 deep:
// the walk stops at its depth bound with a typed error (without it, the
// walk goes on through every level: deep recursion, and quadratic time in
// copying the nested boxes).
func TestMoovNestingBounded(t *testing.T) {
	const depth = 100000
	var b []byte
	b = append(b, 0, 0, 0, 20, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 0, 0, 'i', 's', 'o', 'm')
	moovSize := 8 + 8*depth
	b = append(b, byte(moovSize>>24), byte(moovSize>>16), byte(moovSize>>8), byte(moovSize), 'm', 'o', 'o', 'v')
	for i := range depth {
		n := 8 * (depth - i)
		b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 't', 'r', 'a', 'k')
	}
	_, err := NewMP4(bytes.NewReader(b), Options{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nested") {
		t.Fatalf("NewMP4 = %v, want ErrInvalid for the nesting", err)
	}
}
