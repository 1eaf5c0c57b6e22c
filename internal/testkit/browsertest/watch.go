package browsertest

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// PageState loads pageURL (any page, for example a server's own player page)
// in a fresh headless Chromium and evaluates expr, a JavaScript expression
// with a JSON-serializable value, every poll until until accepts the value
// or timeout expires. It returns the last value, whether until accepted it,
// and the page's console messages. The browser is gone when it returns.
//
// Chromium is looked up as for [PlayHLS].
func PageState(t testing.TB, pageURL, expr string, timeout time.Duration, until func(json.RawMessage) bool) (last json.RawMessage, ok bool, console []string) {
	t.Helper()
	b := openPage(t, pageURL)
	defer b.close(t)
	poll(t, b, timeout, expr, func(_ context.Context, v json.RawMessage) bool {
		last, ok = v, until(v)
		return ok
	})
	console, _, _ = b.events()
	return last, ok, console
}
