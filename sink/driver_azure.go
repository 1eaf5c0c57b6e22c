//go:build !livechunk_noazure && !livechunk_nocloud

package sink

import _ "gocloud.dev/blob/azureblob" // azblob:// URLs

func init() { driverBuilt["azblob"] = true }
