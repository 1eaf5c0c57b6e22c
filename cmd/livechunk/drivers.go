package main

import (
	"errors"
	"fmt"

	"github.com/livechunk/livechunk/sink"
)

// The command links the cloud drivers of gocloud.dev/blob (the library
// links none): driver_s3.go, driver_gcs.go and driver_azure.go each
// blank-import one. A build tag leaves one out (livechunk_nos3,
// livechunk_nogcs, livechunk_noazure) or all three (livechunk_nocloud):
// a driver costs start-up time and binary size even when it is not used
// (see BENCHMARKS.md).

// driverTags names the build tag that leaves out each cloud driver.
var driverTags = map[string]string{
	"s3":     "livechunk_nos3",
	"gs":     "livechunk_nogcs",
	"azblob": "livechunk_noazure",
}

// driverLinked records the cloud drivers this build linked (set by the
// driver_*.go files).
var driverLinked = map[string]bool{}

// explainDriver adds to an error of sink.Open for a cloud driver that this
// build left out the build tags that left it out; other errors are returned
// as they are.
func explainDriver(err error) error {
	var de *sink.DriverError
	if !errors.As(err, &de) || driverLinked[de.Scheme] {
		return err
	}
	tag, ok := driverTags[de.Scheme]
	if !ok {
		return err
	}
	return fmt.Errorf("%w (this livechunk was built with -tags %s or livechunk_nocloud)", err, tag)
}
