package auditsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// WebhookConfig configures a webhook sink.
type WebhookConfig struct {
	// URL receives each batch as a POST of JSON lines
	// (application/x-ndjson). https, or http to a loopback address.
	URL string
	// CAFile, if set, is the PEM bundle that verifies the server (default:
	// the system's roots).
	CAFile string
	// Token, if set, is sent as "Authorization: Bearer TOKEN".
	Token string
	// Timeout bounds one POST; default 30s.
	Timeout time.Duration
}

// Webhook posts batches; a 2xx answer acknowledges one.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
}

// NewWebhook checks cfg.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("auditsink: webhook url %q is not an absolute URL", cfg.URL)
	}
	if u.Scheme != "https" {
		host := u.Hostname()
		ip := net.ParseIP(host)
		if u.Scheme != "http" || !(host == "localhost" || ip != nil && ip.IsLoopback()) {
			return nil, fmt.Errorf("auditsink: webhook url %q: use https (plain http only to a loopback address)", cfg.URL)
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("auditsink: webhook ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("auditsink: webhook ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Webhook{cfg: cfg, client: &http.Client{
		Timeout:   cfg.Timeout,
		Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment, MaxIdleConns: 2},
		// A sink that redirects is misconfigured; do not follow it with the token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

func (w *Webhook) Name() string { return "webhook" }

// Send posts the lines; only a 2xx answer counts as delivered.
func (w *Webhook) Send(ctx context.Context, lines [][]byte) error {
	body := bytes.Join(lines, []byte("\n"))
	body = append(body, '\n')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "bastion-audit")
	if w.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.cfg.Token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: %s", resp.Status)
	}
	return nil
}

func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}
