//go:build !livechunk_nogcs && !livechunk_nocloud

package sink

import _ "gocloud.dev/blob/gcsblob" // gs:// URLs

func init() { driverBuilt["gs"] = true }
