package player

import (
	"bytes"
	"testing"
)

func TestEmbeddedHLSJS(t *testing.T) {
	if len(HLSJS) < 100_000 {
		t.Fatalf("hls.min.js is only %d bytes", len(HLSJS))
	}
	// The UMD build carries its version as a string literal.
	if !bytes.Contains(HLSJS, []byte(`"`+HLSJSVersion+`"`)) {
		t.Errorf("hls.min.js does not contain version %q", HLSJSVersion)
	}
}
