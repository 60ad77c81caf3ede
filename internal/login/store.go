package login

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Logins are kept per bastion: several (staging, production) are normal,
// and logging in to one must not touch another's key, certificate or
// known_hosts. Under the base directory (DefaultDir):
//
//	bastions/<name>/   one login: id_ed25519, id_ed25519-cert.pub, known_hosts, state.json
//	current            the URL of the bastion logged in to last: the default
//
// <name> is the bastion's host, with "_port" when the URL gives a port
// (bastion.example.com, 127.0.0.1_8443). A state.json directly in the base
// directory is a login from before logins were kept per bastion; it is
// still found.
const (
	bastionsDir = "bastions"
	currentFile = "current"
)

// ErrNotLoggedIn means there is no login for the bastion asked for.
var ErrNotLoggedIn = errors.New("not logged in")

// NormalizeURL returns the bastion URL as logins store it: scheme and
// host, a path without a trailing slash.
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("login: bastion URL %q must be http(s)://host[:port]", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	return u.String(), nil
}

// Name is the directory name of a bastion's login: its host, and its port
// when the URL names one. Only [a-z0-9._-] remain, so a URL cannot reach
// outside the bastions directory.
func Name(bastionURL string) (string, error) {
	n, err := NormalizeURL(bastionURL)
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(n)
	name := u.Hostname()
	if p := u.Port(); p != "" {
		name += "_" + p
	}
	if u.Path != "" {
		name += "_" + u.Path
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name = strings.Trim(b.String(), ".")
	if name == "" {
		return "", fmt.Errorf("login: bastion URL %q names no host", bastionURL)
	}
	return name, nil
}

// Dir is where the login to bastionURL is kept under base.
func Dir(base, bastionURL string) (string, error) {
	name, err := Name(bastionURL)
	if err != nil {
		return "", err
	}
	return filepath.Join(base, bastionsDir, name), nil
}

// SetCurrent makes bastionURL the default for commands without --bastion.
func SetCurrent(base, bastionURL string) error {
	n, err := NormalizeURL(bastionURL)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return replaceFile(filepath.Join(base, currentFile), []byte(n+"\n"))
}

// Current returns the default bastion's URL, "" when there is none.
func Current(base string) string {
	b, err := os.ReadFile(filepath.Join(base, currentFile))
	if err != nil {
		return ""
	}
	n, err := NormalizeURL(string(b))
	if err != nil {
		return ""
	}
	return n
}

// States returns every login kept under base, sorted by URL.
func States(base string) ([]*State, error) {
	entries, err := os.ReadDir(filepath.Join(base, bastionsDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("login: %w", err)
	}
	var list []*State
	seen := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		st, err := LoadState(filepath.Join(base, bastionsDir, e.Name()))
		if err != nil {
			continue
		}
		list = append(list, st)
		seen[st.BastionURL] = true
	}
	if st, err := LoadState(base); err == nil && !seen[st.BastionURL] {
		list = append(list, st) // from before logins were kept per bastion
	}
	sort.Slice(list, func(i, j int) bool { return list[i].BastionURL < list[j].BastionURL })
	return list, nil
}

// Resolve finds the login a command should use: sel is a bastion URL, its
// host or host:port, or its login's name; "" means the default (the one
// logged in to last).
func Resolve(base, sel string) (*State, error) {
	if sel == "" {
		cur := Current(base)
		if cur == "" {
			if st, err := LoadState(base); err == nil {
				return st, nil // from before logins were kept per bastion
			}
			return nil, fmt.Errorf("%w: run `bastion login --bastion URL` first", ErrNotLoggedIn)
		}
		sel = cur
	}
	list, err := States(base)
	if err != nil {
		return nil, err
	}
	var found []*State
	for _, st := range list {
		if Matches(st.BastionURL, sel) {
			found = append(found, st)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w to %s: run `bastion login --bastion %s`", ErrNotLoggedIn, sel, loginHint(sel))
	case 1:
		return found[0], nil
	}
	var urls []string
	for _, st := range found {
		urls = append(urls, st.BastionURL)
	}
	return nil, fmt.Errorf("login: %q matches several logins (%s): give the URL", sel, strings.Join(urls, ", "))
}

// Matches reports whether sel names the bastion at bastionURL: the URL
// itself, its host:port, its host, or its login's name.
func Matches(bastionURL, sel string) bool {
	sel = strings.ToLower(strings.TrimSpace(sel))
	if n, err := NormalizeURL(sel); err == nil && strings.Contains(sel, "://") {
		return n == bastionURL
	}
	u, err := url.Parse(bastionURL)
	if err != nil {
		return false
	}
	name, _ := Name(bastionURL)
	return sel == u.Host || sel == u.Hostname() || sel == name ||
		strings.Trim(sel, "[]") == strings.Trim(u.Hostname(), "[]")
}

// loginHint is what to pass to `bastion login --bastion` for sel: the URL
// when sel is one, else a placeholder.
func loginHint(sel string) string {
	if strings.Contains(sel, "://") {
		return sel
	}
	if _, _, err := net.SplitHostPort(sel); err == nil {
		return "https://" + sel
	}
	return "URL"
}
