// Command ci-llm-summary is the worked example of the README's "CI jobs
// and agents" section: a nightly job that reads a table in chunks through
// the bastion's SQL API — each chunk its own short-lived, guarded, masked
// and recorded request — and hands each chunk to a summariser.
//
// It expects `bastion login --id-token-env ACTIONS_ID_TOKEN` to have run in
// the job (see workflow.yml), which wrote the access token it reads, and it
// has no dependency on the bastion's code: the SQL API is JSON over HTTPS.
//
//	ci-llm-summary -bastion https://bastion.example.com -target pg1 -db shop -user app_ro \
//	    -query 'SELECT id, name, card FROM customers ORDER BY id' -chunk 200
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type sqlRequest struct {
	Target   string `json:"target"`
	Database string `json:"database"`
	User     string `json:"user"`
	SQL      string `json:"sql"`
	MaxRows  int    `json:"max_rows"`
}

type sqlResponse struct {
	SessionID string      `json:"session_id"`
	Status    string      `json:"status"`
	Columns   []string    `json:"columns"`
	Rows      [][]*string `json:"rows"`
	Truncated bool        `json:"truncated"`
	Error     *struct {
		SQLState string `json:"sqlstate"`
		Message  string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

func main() {
	base := flag.String("bastion", "", "the bastion's URL")
	target := flag.String("target", "pg1", "PostgreSQL target")
	db := flag.String("db", "shop", "database")
	user := flag.String("user", "app_ro", "database user")
	query := flag.String("query", "SELECT id, name, card FROM customers ORDER BY id", "the rows to summarise (ordered, without LIMIT)")
	chunk := flag.Int("chunk", 200, "rows per request (what fits in the model's context)")
	chunks := flag.Int("chunks", 50, "at most this many requests")
	flag.Parse()
	if err := run(*base, sqlRequest{Target: *target, Database: *db, User: *user}, *query, *chunk, *chunks); err != nil {
		fmt.Fprintln(os.Stderr, "ci-llm-summary:", err)
		os.Exit(1)
	}
}

func run(base string, req sqlRequest, query string, chunk, chunks int) error {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	tok, err := os.ReadFile(filepath.Join(dir, "bastion", "access_token"))
	if err != nil {
		return fmt.Errorf("no access token (run `bastion login --id-token-env ...` first): %w", err)
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	for i := range chunks {
		req.SQL = fmt.Sprintf("%s LIMIT %d OFFSET %d", query, chunk, i*chunk)
		req.MaxRows = chunk
		body, _ := json.Marshal(req)
		hr, _ := http.NewRequest(http.MethodPost, strings.TrimRight(base, "/")+"/v1/sql", bytes.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		hr.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(hr)
		if err != nil {
			return err
		}
		var r sqlResponse
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		switch {
		case err != nil:
			return fmt.Errorf("chunk %d: %s: %v", i, resp.Status, err)
		case resp.StatusCode == http.StatusAccepted:
			return fmt.Errorf("chunk %d is held for approval (request %s): a read-only summary should never need one", i, r.RequestID)
		case r.Error != nil:
			return fmt.Errorf("chunk %d refused (SQLSTATE %s): %s", i, r.Error.SQLState, r.Error.Message)
		}
		if len(r.Rows) == 0 {
			return nil
		}
		summarise(i, r)
	}
	return nil
}

// summarise stands in for the model call: it gets the chunk as it came
// through the bastion (masked values read ********) and, in a real job,
// would send it to the LLM and collect the answer.
func summarise(i int, r sqlResponse) {
	fmt.Printf("chunk %d (session %s): %d rows of %s\n", i, r.SessionID, len(r.Rows), strings.Join(r.Columns, ", "))
}
