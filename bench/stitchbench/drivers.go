package main

// Like the livechunk command, the benchmark opens bucket URLs of any of the
// three cloud stores, so it links their drivers (the library links none).
import (
	_ "gocloud.dev/blob/azureblob" // azblob:// URLs
	_ "gocloud.dev/blob/gcsblob"   // gs:// URLs
	_ "gocloud.dev/blob/s3blob"    // s3:// URLs
)
