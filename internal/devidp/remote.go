package devidp

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// ApproveDeviceAt is ApproveDevice for a provider in another process: it needs only
// the issuer URL, and plays the person at that provider's device page over HTTP, the
// way a browser would (open the page for userCode, pick subject, submit). Tests of
// `bastion demo`, which runs its provider in its own process, approve a device login
// with it. It never follows redirects and never uses a proxy.
//
// It returns an error wrapping ErrInvalidConfig for an issuer that is not
// scheme://host[:port], and ErrUnknownUserCode, ErrUnknownUser or ErrRefused as
// ApproveDevice does.
func ApproveDeviceAt(ctx context.Context, issuer, userCode, subject string) error {
	cfg := Config{Issuer: issuer}
	if _, err := checkConfig(&cfg); err != nil {
		return err
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	p := &Provider{
		issuer: issuer,
		closed: make(chan struct{}),
		browser: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	if err := p.ApproveDevice(ctx, userCode, subject); err != nil {
		return fmt.Errorf("%w (at %s)", err, issuer)
	}
	return nil
}
