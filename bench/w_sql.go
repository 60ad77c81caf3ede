package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
)

// sqlWorkers are the concurrent clients of the SQL API workload, as
// pgbench's -c.
const sqlWorkers = 4

// benchSQLAPI measures POST /v1/sql: each request is a session of its own
// (the statement parsed, judged and masked, the session recorded and
// audited) with its own upstream TLS connection and certificate. The
// baseline does what such a request must at least do without a bastion: a
// fresh pgx connection to PostgreSQL over TLS with a client certificate
// (sslmode=verify-full), the same SELECT, close. Both sides run
// sqlWorkers clients for -sql-time per round, alternating which goes
// first.
func (e *env) benchSQLAPI() result {
	r := result{
		Workload: fmt.Sprintf("`POST /v1/sql`, one SELECT per request (own session, upstream connection and certificate, audited), %d clients", sqlWorkers),
		Baseline: "a fresh pgx connection to PostgreSQL over TLS (client certificate, verify-full) per request, same SELECT",
		Goal:     "(requests/s and p99 reported)",
		Mark:     "—",
	}
	if e.pg == nil {
		if e.pgErr != nil {
			return failed(r, e.pgErr)
		}
		r.Mark = markPending
		return r
	}
	id, err := e.auth.Stamp(ca.Identity{User: benchUser, Issuer: e.idp.Issuer(), Subject: "u-alice", Groups: []string{"bench"}}, 4*time.Hour)
	if err != nil {
		return failed(r, err)
	}
	token, err := e.auth.IssueAccessToken(id)
	if err != nil {
		return failed(r, err)
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: sqlWorkers}}
	defer client.CloseIdleConnections()
	url := "http://" + e.bastion.httpAddr + bastion.PathSQL
	stmt := func() string {
		return fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d", 1+rand.IntN(200000))
	}
	viaAPI := func(ctx context.Context) error {
		body, _ := json.Marshal(bastion.SQLRequest{Target: "pg1", Database: "bench", User: "bench", SQL: stmt(), MaxRows: 10})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out bastion.SQLResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || len(out.Rows) != 1 {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("SQL API: %s: %+v %v %s", resp.Status, out, err, b)
		}
		return nil
	}
	dsn := e.pg.directConn(e.pg.pg.Port)
	direct := func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var balance int
		return conn.QueryRow(ctx, stmt(), pgx.QueryExecModeSimpleProtocol).Scan(&balance)
	}
	for _, f := range []func(context.Context) error{viaAPI, direct} { // each works before anything is timed
		if err := f(context.Background()); err != nil {
			return failed(r, err)
		}
	}
	var rates [2][]float64
	var lat [2][]time.Duration
	var cpus []float64
	for round := range e.opt.rounds {
		for _, s := range order(round) {
			f := direct
			if s == viaBastion {
				f = viaAPI
			}
			name := map[side]string{baseline: "direct pgx", viaBastion: "POST /v1/sql"}[s]
			c0, err := readCPU(e.bastion.pid)
			if err != nil {
				return failed(r, err)
			}
			n, l, err := sqlRound(f, e.opt.sqlTime)
			if err != nil {
				return failed(r, fmt.Errorf("%s: %w", name, err))
			}
			if s == viaBastion {
				cpu, err := e.cpuEnd(s, c0)
				if err != nil {
					return failed(r, err)
				}
				cpus = append(cpus, cpu.Seconds()/float64(len(l))*1000)
			}
			rates[s], lat[s] = append(rates[s], n), append(lat[s], l...)
			logf("  sql round %d %s: %.1f/s", round+1, name, n)
		}
	}
	p99 := func(s side) string { return fmtNum(quantile(durationsMS(lat[s]), 0.99)) }
	r.Base = fmt.Sprintf("%s/s, p99 %s ms", fmtNum(median(rates[baseline])), p99(baseline))
	r.Bastion = fmt.Sprintf("%s/s, p99 %s ms", fmtNum(median(rates[viaBastion])), p99(viaBastion))
	r.CPUBast = fmt.Sprintf("%s s per 1,000 requests", fmtNum(median(cpus)))
	r.Ratio = fmt.Sprintf("%s requests/s; p99 %s ms (baseline %s ms)", ratioCell(ratios(rates[viaBastion], rates[baseline])), p99(viaBastion), p99(baseline))
	return r
}

// sqlRound runs f from sqlWorkers goroutines for d and returns the rate and
// every latency.
func sqlRound(f func(context.Context) error, d time.Duration) (float64, []time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range sqlWorkers {
		wg.Go(func() {
			var mine []time.Duration
			var err error
			for err == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				if err = f(ctx); err == nil {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	return float64(len(lat)) / time.Since(start).Seconds(), lat, firstErr
}
