//go:build livechunk_nocloud

package main

const buildTags = "livechunk_nocloud"
