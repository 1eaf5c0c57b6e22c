// Package azurite runs Azurite's blob service (azurite-blob from npm) on
// 127.0.0.1 for tests: Azure Blob Storage as Microsoft's emulator serves
// it, opened through an azblob:// URL with shared-key signing.
package azurite

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob:// URLs

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
)

// Key is the documented, public key of Azurite's development account
// devstoreaccount1.
const Key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// Emulator is a running azurite-blob.
type Emulator struct {
	Addr string // 127.0.0.1:port
	log  mediatest.SyncBuffer
}

// Start runs azurite-blob on a free port with its data in a temporary
// directory and waits until it listens; it stops when the test ends.
// Without azurite-blob the test is skipped, unless LIVECHUNK_REQUIRE_TOOLS
// is set.
func Start(t testing.TB) *Emulator {
	t.Helper()
	bin := mediatest.RequireTool(t, "azurite-blob")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	e := &Emulator{Addr: addr.String()}
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(addr.Port),
		"--location", t.TempDir(), "--silent", "--loose", "--skipApiVersionCheck")
	cmd.Stdout, cmd.Stderr = &e.log, &e.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", e.Addr, time.Second)
		if err == nil {
			c.Close()
			return e
		}
		select {
		case <-exited:
			t.Fatalf("azurite exited: %s", e.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("azurite did not listen: %v\n%s", err, e.log.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the port: an observable condition
	}
}

// Open sets the account's credentials in the test's environment (the
// azblob driver reads them there) and opens the container through
// sink.Open, creating it.
func (e *Emulator) Open(t *testing.T, ctx context.Context, name string) *blob.Bucket {
	t.Helper()
	t.Setenv("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
	t.Setenv("AZURE_STORAGE_KEY", Key)
	b, err := sink.Open(ctx, "azblob://"+name+"?protocol=http&localemu=true&domain="+e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var c *container.Client
	if !b.As(&c) {
		t.Fatal("not an Azure bucket")
	}
	if _, err := c.Create(ctx, nil); err != nil {
		t.Fatalf("create container: %v\n%s", err, e.log.String())
	}
	return b
}

// Log is what Azurite wrote so far.
func (e *Emulator) Log() string { return e.log.String() }
