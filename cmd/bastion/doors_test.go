package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/internal/testenv"
)

// sqlAPIWorld is a bastion with the SQL API on, pg1 and a CI login's access token.
func sqlAPIWorld(t *testing.T, yaml string) (*world, *testenv.Postgres, string) {
	t.Helper()
	testenv.RequirePostgres(t)
	var pg *testenv.Postgres
	w := newWorldListen(t, "", func(k *ca.Keys) []string {
		var target string
		pg, target = startShopPostgres(t, k)
		return []string{target}
	}, yaml)
	claims, _ := w.ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
	tok, err := w.ci.MintIDToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.run([]string{"CI_OIDC_TOKEN=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN"); r.Code != 0 {
		t.Fatalf("login: %s", r)
	}
	st, err := login.Resolve(filepath.Join(w.home, ".config", "bastion"), "")
	if err != nil {
		t.Fatal(err)
	}
	return w, pg, readAccessToken(t, st)
}

// TestSQLAPIAnswerBounded: one SQL API request cannot make the bastion hold an
// answer of any size in memory. The row limit alone (10000 by default) bounds rows, not
// bytes: 300 rows of 1 MiB each made a 300 MiB answer (10000 of them, 10 GiB), all of it
// held on the bastion's heap before the first byte was sent. The answer is now cut at
// sql_api.max_bytes and says it was truncated; so are notices.
func TestSQLAPIAnswerBounded(t *testing.T) {
	w, _, token := sqlAPIWorld(t, dbWorldYAML)
	post := func(sql string) (int, int64, []byte) {
		t.Helper()
		body, _ := json.Marshal(bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: sql})
		hr, _ := http.NewRequest("POST", w.url()+bastion.PathSQL, bytes.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var head bytes.Buffer
		n, _ := io.Copy(io.Discard, io.TeeReader(io.LimitReader(resp.Body, 64<<20), &head))
		rest, _ := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, n + rest, head.Bytes()
	}

	// The bastion runs in this process: watch its heap while it answers.
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	code, size, head := post("SELECT g, repeat('x', 1048576) AS big FROM generate_series(1, 64) g")
	close(stop)
	t.Logf("answer %d: %d bytes; heap peak %d MiB over %d MiB before", code, size, (peak.Load()-base)>>20, base>>20)
	if size > 40<<20 {
		t.Fatalf("one request's answer is %d MiB: the SQL API holds an answer of any size", size>>20)
	}
	var r bastion.SQLResponse
	if err := json.Unmarshal(head, &r); err != nil || code != 200 || !r.Truncated || len(r.Rows) == 0 || len(r.Rows) >= 64 {
		t.Fatalf("want 200, some rows and truncated: %d %v rows=%d truncated=%v", code, err, len(r.Rows), r.Truncated)
	}

	// Notices too: a DO block raising 30000 notices of 1 KiB (30 MiB, past the 16 MiB
	// bound, and quick enough for the world's 20 s timeout under -race on a busy machine).
	code, size, head = post("DO $$ BEGIN FOR i IN 1..30000 LOOP RAISE NOTICE '%', repeat('n', 1024); END LOOP; END $$")
	t.Logf("notices answer %d: %d bytes", code, size)
	if size > 40<<20 {
		t.Fatalf("one request's notices make a %d MiB answer", size>>20)
	}
	r = bastion.SQLResponse{}
	if err := json.Unmarshal(head, &r); err != nil || code != 200 || len(r.Notices) == 0 {
		t.Fatalf("notices: %d %v %d", code, err, len(r.Notices))
	}
}
