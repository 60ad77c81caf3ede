package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStatic: a versioned URL is cached for good, a plain one revalidated
// by its ETag; gzip for those who accept it, the same bytes once
// decompressed; unknown files are not found.
func TestStatic(t *testing.T) {
	c, _, _ := newTestConsole(t, false)
	const name = "player/asciinema-player.min.js"
	a := loadAssets()[name]
	if a == nil || a.gz == nil || len(a.gz) >= len(a.raw)/2 {
		t.Fatalf("the player's script is not compressed well: %+v", a != nil && a.gz != nil)
	}
	get := func(url string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return serve(c, req)
	}
	u := staticURL(name)
	if !strings.HasPrefix(u, "/static/"+name+"?v=") {
		t.Fatalf("staticURL = %q", u)
	}
	rec := get(u, "Accept-Encoding", "gzip, deflate, br")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") || rec.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("versioned, gzip: %d %v", rec.Code, rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, a.raw) {
		t.Error("the gzip copy does not decompress to the file")
	}
	etag := rec.Header().Get("ETag")
	if rec := get(u, "Accept-Encoding", "gzip", "If-None-Match", etag); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", rec.Code)
	}
	rec = get("/static/"+name, "Accept-Encoding", "gzip;q=0")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Encoding") != "" || rec.Header().Get("Cache-Control") != "no-cache" || !bytes.Equal(rec.Body.Bytes(), a.raw) {
		t.Errorf("unversioned, no gzip: %d %v", rec.Code, rec.Header())
	}
	if rec := get("/static/"+name, "If-None-Match", etag); rec.Code != http.StatusOK {
		t.Errorf("the gzip ETag matched the plain copy: %d", rec.Code)
	}
	for _, p := range []string{"/static/nothing.js", "/static/../console.go", "/static/player/"} {
		if rec := get(p); rec.Code == http.StatusOK { // not found, or the mux's redirect to the cleaned path
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
}

var acceptCases = []struct {
	in   string
	want bool
}{
	{"", false}, {"gzip", true}, {"gzip, deflate, br", true}, {"br;q=1.0, gzip;q=0.8", true}, {"GZIP", true},
	{"gzip;q=0", false}, {"gzip; q=0", false}, {"gzip;q=0.000", false}, {"deflate", false}, {"x-gzip", false},
	{"*", false}, {",,;;", false}, {"gzip;q=", true},
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range acceptCases {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", tc.in)
		if got := acceptsGzip(r); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v", tc.in, got)
		}
	}
}

func FuzzAcceptsGzip(f *testing.F) {
	for _, tc := range acceptCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", s)
		if acceptsGzip(r) && !strings.Contains(strings.ToLower(s), "gzip") {
			t.Fatalf("acceptsGzip(%q) without gzip", s)
		}
	})
}
