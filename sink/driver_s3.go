//go:build !livechunk_nos3 && !livechunk_nocloud

package sink

import _ "gocloud.dev/blob/s3blob" // s3:// URLs

func init() { driverBuilt["s3"] = true }
