package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// asset is one of the console's static files, as served: its bytes, a
// gzip copy when that is smaller, and a version (a hash of the bytes) that
// names it in URLs, so it can be cached for good.
type asset struct {
	name    string
	raw, gz []byte
	version string
}

var (
	assetsOnce sync.Once
	assets     map[string]*asset // by path under static/
)

// compressible names the static files worth compressing.
func compressible(name string) bool {
	switch path.Ext(name) {
	case ".js", ".css", ".svg", ".json", ".wasm", ".txt", ".html":
		return true
	}
	return path.Base(name) == "LICENSE" || path.Base(name) == "VERSION"
}

// loadAssets reads the embedded static files once, hashing each and
// compressing those that gain from it (the player's script shrinks to
// about a third).
func loadAssets() map[string]*asset {
	assetsOnce.Do(func() {
		assets = map[string]*asset{}
		static, _ := fs.Sub(staticFS, "static")
		fs.WalkDir(static, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := fs.ReadFile(static, name)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(raw)
			a := &asset{name: name, raw: raw, version: hex.EncodeToString(sum[:8])}
			if compressible(name) {
				var b bytes.Buffer
				zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
				zw.Write(raw)
				zw.Close()
				if b.Len() < len(raw) {
					a.gz = b.Bytes()
				}
			}
			assets[name] = a
			return nil
		})
	})
	return assets
}

// staticURL is the URL of static file name with its version, for pages;
// an unknown name (a template's mistake) gets the plain path.
func staticURL(name string) string {
	if a := loadAssets()[name]; a != nil {
		return "/static/" + name + "?v=" + a.version
	}
	return "/static/" + name
}

// serveStatic serves a static file: with its version in the URL it may be
// cached for a year (a new build's page names the new version); without,
// the browser revalidates with the ETag. A client that accepts gzip gets
// the compressed copy.
func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	a := loadAssets()[strings.TrimPrefix(r.URL.Path, "/static/")]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	if v := r.URL.Query().Get("v"); v == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	body, etag := a.raw, `"`+a.version+`"`
	if a.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = a.gz, `"`+a.version+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	if ct := staticTypes[path.Ext(a.name)]; ct != "" {
		h.Set("Content-Type", ct)
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

var staticTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".wasm":  "application/wasm",
	".json":  "application/json",
	".png":   "image/png",
	".woff2": "font/woff2",
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip
// (and does not refuse it with q=0).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
