//go:build !livechunk_nos3 && !livechunk_nocloud

package main

import _ "gocloud.dev/blob/s3blob" // s3:// URLs

func init() { driverLinked["s3"] = true }
