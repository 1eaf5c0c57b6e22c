package livechunk_test

// The reliability and playback tests open s3:// and azblob:// URLs through
// sink.Open, as an application would; like an application, they link the
// drivers (the library links none).
import (
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/s3blob"
)
