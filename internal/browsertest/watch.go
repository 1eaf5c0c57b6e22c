package browsertest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/livechunk/livechunk/internal/mediatest"
)

// PageState loads pageURL (any page, for example a server's own player page)
// in a fresh headless Chromium and evaluates expr, a JavaScript expression
// with a JSON-serializable value, every poll until until accepts the value
// or timeout expires. It returns the last value, whether until accepted it,
// and the page's console messages. The browser is gone when it returns.
//
// Chromium is looked up with [mediatest.RequireTool], as for [PlayHLS].
func PageState(t testing.TB, pageURL, expr string, timeout time.Duration, until func(json.RawMessage) bool) (last json.RawMessage, ok bool, console []string) {
	t.Helper()
	exe := mediatest.RequireTool(t, "chromium")
	b := launch(t, exe)
	defer b.close(t)
	sctx, scancel := context.WithTimeout(b.ctx, startupTimeout)
	defer scancel()
	resp, err := chromedp.Run(sctx, chromedp.NavigateResponse(pageURL))
	if err != nil {
		t.Fatalf("browsertest: loading %s in Chromium: %v\n%s", pageURL, err, b.output())
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("browsertest: page %s: HTTP %d", pageURL, resp.Status)
	}
	pctx, pcancel := context.WithTimeout(b.ctx, timeout)
	defer pcancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		v, err := chromedp.Run(pctx, chromedp.Evaluate[json.RawMessage](expr))
		if err != nil && pctx.Err() == nil {
			t.Fatalf("browsertest: evaluating %q: %v\n%s", expr, err, b.output())
		}
		if err == nil {
			last = v
			if until(v) {
				ok = true
				break
			}
		}
		select {
		case <-tick.C:
			continue
		case <-pctx.Done():
		}
		break
	}
	console, _, _ = b.events()
	return last, ok, console
}
