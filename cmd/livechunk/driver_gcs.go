//go:build !livechunk_nogcs && !livechunk_nocloud

package main

import _ "gocloud.dev/blob/gcsblob" // gs:// URLs

func init() { driverLinked["gs"] = true }
