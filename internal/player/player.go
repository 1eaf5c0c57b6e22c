// Package player holds the browser-side assets livechunk serves to play its
// HLS output in a web page: a pinned, unmodified copy of hls.js.
//
// hls.min.js is dist/hls.min.js of the npm package hls.js at [HLSJSVersion]
// (Apache License 2.0, see HLSJS-LICENSE beside this file). To update it:
//
//	cd "$(mktemp -d)" && npm pack hls.js@X.Y.Z && tar xzf hls.js-X.Y.Z.tgz
//	cp package/dist/hls.min.js <repo>/internal/player/
//
// then set HLSJSVersion and the checksum in HLSJS-LICENSE, and run the
// browser playback tests (go test -run Playback .).
package player

import _ "embed"

// HLSJSVersion is the version of the embedded hls.js.
const HLSJSVersion = "1.7.4"

// HLSJS is the minified hls.js script (UMD build: it defines the global Hls
// when loaded with a <script> tag). It loads nothing from the network by
// itself; its transmuxing worker is created from a blob: URL.
//
//go:embed hls.min.js
var HLSJS []byte
