package devidp

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// The browser stand-ins below drive the same HTTP endpoints, over real HTTP, that a
// person's browser does: they follow redirects within the provider, read the page,
// pick the user's button and submit the form. They stop at the first redirect that
// leaves the provider, which is the redirect to the client.

const (
	maxPageBytes = 1 << 20
	maxHops      = 10
)

// CompleteBrowserLogin plays the browser in an authorization code login: it opens
// authorizeURL (which must be on this provider), follows the redirects to the login
// page, picks subject there and follows the redirects until one leaves the provider.
// It returns that redirect (to the client's redirect URI, carrying code and state)
// without requesting it; deliver it to your own listener if you run one.
//
// If the provider refuses the request it returns an error wrapping ErrRefused,
// ErrUnknownUser or ErrUnknownLoginRequest. When the refusal is itself a redirect to
// the client (an OAuth error response), that redirect is returned with the error.
func (p *Provider) CompleteBrowserLogin(ctx context.Context, authorizeURL, subject string) (*url.URL, error) {
	const what = "browser login"
	u, err := url.Parse(authorizeURL)
	if err != nil {
		return nil, fmt.Errorf("devidp: %s: authorize URL: %w", what, err)
	}
	if !p.onProvider(u) {
		return nil, fmt.Errorf("devidp: %s: authorize URL is not on issuer %s", what, p.issuer)
	}
	resp, err := p.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("devidp: %s: %w", what, err)
	}
	posted := false
	for range maxHops {
		switch {
		case resp.status >= 300 && resp.status < 400:
			loc, err := resp.location()
			if err != nil {
				return nil, fmt.Errorf("devidp: %s: %w", what, err)
			}
			if !p.internalPath(loc) {
				q := loc.Query()
				if code := q.Get("error"); code != "" {
					return loc, fmt.Errorf("devidp: %s: redirect to the client with error %q: %q: %w",
						what, clean(code), clean(q.Get("error_description")), ErrRefused)
				}
				return loc, nil
			}
			resp, err = p.do(ctx, http.MethodGet, loc, nil)
		case resp.status == http.StatusOK && !posted:
			pg := parsePage(resp.body)
			id, ok := pg.fields[queryLoginID]
			if !ok {
				return nil, resp.error(what, pg)
			}
			if !slices.Contains(pg.subjects, subject) {
				return nil, fmt.Errorf("devidp: %s: subject %q is not offered on the login page: %w", what, subject, ErrUnknownUser)
			}
			action, err := resp.resolve(pg.action)
			if err != nil || !p.onProvider(action) {
				return nil, fmt.Errorf("devidp: %s: login form has a bad action %q", what, clean(pg.action))
			}
			posted = true
			resp, err = p.do(ctx, http.MethodPost, action, url.Values{queryLoginID: {id}, "subject": {subject}})
		default:
			return nil, resp.error(what, parsePage(resp.body))
		}
		if err != nil {
			return nil, fmt.Errorf("devidp: %s: %w", what, err)
		}
	}
	return nil, fmt.Errorf("devidp: %s: more than %d redirects: %w", what, maxHops, ErrRefused)
}

// ApproveDevice plays the person at the device page: it opens the page for userCode,
// checks the code is pending, and approves it as subject. It returns an error wrapping
// ErrUnknownUserCode, ErrUnknownUser or ErrRefused when the page refuses.
func (p *Provider) ApproveDevice(ctx context.Context, userCode, subject string) error {
	const what = "approve device"
	u, err := url.Parse(p.issuer + pathDevice + "?user_code=" + url.QueryEscape(userCode))
	if err != nil {
		return fmt.Errorf("devidp: %s: %w", what, err)
	}
	resp, err := p.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("devidp: %s: %w", what, err)
	}
	pg := parsePage(resp.body)
	code, ok := pg.fields["user_code"]
	if resp.status != http.StatusOK || !ok {
		return resp.error(what, pg)
	}
	if !slices.Contains(pg.subjects, subject) {
		return fmt.Errorf("devidp: %s: subject %q is not offered on the device page: %w", what, subject, ErrUnknownUser)
	}
	action, err := resp.resolve(pg.action)
	if err != nil || !p.onProvider(action) {
		return fmt.Errorf("devidp: %s: device form has a bad action %q", what, clean(pg.action))
	}
	resp, err = p.do(ctx, http.MethodPost, action, url.Values{"user_code": {code}, "subject": {subject}})
	if err != nil {
		return fmt.Errorf("devidp: %s: %w", what, err)
	}
	pg = parsePage(resp.body)
	if resp.status != http.StatusOK || pg.result != resultDeviceApproved {
		return resp.error(what, pg)
	}
	return nil
}

// onProvider reports whether u has the issuer's scheme and host.
func (p *Provider) onProvider(u *url.URL) bool {
	iss, err := url.Parse(p.issuer)
	return err == nil && u.Scheme == iss.Scheme && strings.EqualFold(u.Host, iss.Host) && u.User == nil
}

// internalPath reports whether a redirect stays within the login machinery.
func (p *Provider) internalPath(u *url.URL) bool {
	if !p.onProvider(u) {
		return false
	}
	authz := p.op.AuthorizationEndpoint().Relative()
	switch u.Path {
	case pathLogin, authz, authz + "/callback":
		return true
	}
	return false
}

// response is what the stand-ins keep of an HTTP response.
type response struct {
	url    *url.URL
	status int
	header http.Header
	body   []byte
}

// do sends one request without following redirects. form, when non-nil, is sent as
// an urlencoded body.
func (p *Provider) do(ctx context.Context, method string, u *url.URL, form url.Values) (*response, error) {
	select {
	case <-p.closed:
		return nil, ErrClosed
	default:
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	res, err := p.browser.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxPageBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u.Path, err)
	}
	return &response{url: u, status: res.StatusCode, header: res.Header, body: b}, nil
}

func (r *response) resolve(ref string) (*url.URL, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return nil, err
	}
	return r.url.ResolveReference(u), nil
}

func (r *response) location() (*url.URL, error) {
	loc := r.header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%s answered %d without a Location", r.url.Path, r.status)
	}
	u, err := r.resolve(loc)
	if err != nil {
		return nil, fmt.Errorf("%s answered a bad Location: %w", r.url.Path, err)
	}
	return u, nil
}

// error describes a response the stand-in cannot continue from. The message comes
// from the page's error element, else from the start of a plain-text body.
func (r *response) error(what string, pg page) error {
	sentinel := ErrRefused
	msg := pg.errText
	if pg.errCode != "" {
		if e, ok := errorCodes[pg.errCode]; ok {
			sentinel = e
		}
	} else if msg == "" && !strings.Contains(r.header.Get("Content-Type"), "html") {
		msg = string(r.body)
	}
	if msg == "" {
		msg = "unexpected page"
	}
	return fmt.Errorf("devidp: %s: %s answered %d: %q: %w", what, r.url.Path, r.status, clean(msg), sentinel)
}

// clean makes outside text safe and short for an error message: control characters
// dropped, whitespace collapsed, at most 200 bytes.
func clean(s string) string {
	s = strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}

// page is what the stand-ins read from one of the provider's pages.
type page struct {
	action   string            // action of the first POST form
	fields   map[string]string // hidden inputs of that form
	subjects []string          // user buttons of that form
	errCode  string            // data-error of the error paragraph
	errText  string
	result   string // data-result of the result paragraph
}

// The pages are rendered by this package, so the markup is known exactly; these
// expressions read that markup and nothing more general. Attribute values are
// HTML-escaped by html/template and so never hold a raw quote.
var (
	reForm    = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)</form>`)
	reHidden  = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
	reSubject = regexp.MustCompile(`<button type="submit" name="subject" value="([^"]*)">`)
	reError   = regexp.MustCompile(`(?s)<p class="error" data-error="([^"]*)">(.*?)</p>`)
	reResult  = regexp.MustCompile(`<p class="result" data-result="([^"]*)">`)
)

// parsePage reads a page; anything it does not find stays empty.
func parsePage(b []byte) page {
	var pg page
	pg.fields = make(map[string]string)
	if m := reError.FindSubmatch(b); m != nil {
		pg.errCode = html.UnescapeString(string(m[1]))
		pg.errText = html.UnescapeString(string(m[2]))
	}
	if m := reResult.FindSubmatch(b); m != nil {
		pg.result = html.UnescapeString(string(m[1]))
	}
	m := reForm.FindSubmatch(b)
	if m == nil {
		return pg
	}
	pg.action = html.UnescapeString(string(m[1]))
	for _, f := range reHidden.FindAllSubmatch(m[2], -1) {
		name := html.UnescapeString(string(f[1]))
		if _, dup := pg.fields[name]; !dup {
			pg.fields[name] = html.UnescapeString(string(f[2]))
		}
	}
	for _, s := range reSubject.FindAllSubmatch(m[2], -1) {
		pg.subjects = append(pg.subjects, html.UnescapeString(string(s[1])))
	}
	return pg
}
