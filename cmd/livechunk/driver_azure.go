//go:build !livechunk_noazure && !livechunk_nocloud

package main

import _ "gocloud.dev/blob/azureblob" // azblob:// URLs

func init() { driverLinked["azblob"] = true }
