//go:build livechunk_nocloud

package sink

const buildTags = "livechunk_nocloud"
