package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/internal/safetext"
)

func runMCP(args []string) error {
	fs := flags("mcp", "[--bastion URL]",
		"Serve the Model Context Protocol on stdin/stdout for an LLM agent, with your login's identity:\n"+
			"tools list_targets, describe (the tables and columns you may see) and query, all through the\n"+
			"bastion's SQL API, so statement rules, masking, approvals, recording and audit apply.\n"+
			"Needs a login to a bastion with sql_api enabled; run `bastion login` again when it expires.")
	bastionURL := fs.String("bastion", "", "the bastion you logged in to (default: the last one)")
	if pos, err := parse(fs, args); err != nil || len(pos) > 0 {
		if err == nil {
			fs.Usage()
			err = errUsage
		}
		return err
	}
	st, err := clientState(*bastionURL)
	if err != nil {
		return err
	}
	if st.AccessTokenPath == "" {
		return errors.New("this login has no SQL API access token (the bastion's sql_api is off, or the login predates it)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return newMCPServer(st).Run(ctx, &mcp.StdioTransport{})
}

// mcpTarget names a database for the describe and query tools.
type mcpTarget struct {
	Target   string `json:"target" jsonschema:"a PostgreSQL target name from list_targets"`
	Database string `json:"database" jsonschema:"the database on the target"`
	User     string `json:"user" jsonschema:"the database user (one of the target's db_users)"`
}

type mcpQuery struct {
	mcpTarget
	SQL     string `json:"sql" jsonschema:"one SQL text; the bastion's rules judge every statement"`
	MaxRows int    `json:"max_rows,omitempty" jsonschema:"at most this many rows (default 100)"`
}

type mcpResult struct {
	SessionID string `json:"session_id" jsonschema:"the session_id a held query returned"`
}

// newMCPServer is the MCP server of a login.
func newMCPServer(st *login.State) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "bastion", Version: "v1"}, &mcp.ServerOptions{
		Instructions: "Databases reached through a bastion: every statement is judged by its rules (some are blocked or held for a human's approval), sensitive values come back masked as ********, and everything is recorded under the user's or job's identity.",
	})
	mcp.AddTool(s, &mcp.Tool{Name: "list_targets", Description: "List the PostgreSQL targets this identity may query, with their database users."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			var out, errb bytes.Buffer
			if err := remote(ctx, st, []string{"targets", "--json"}, nil, &out, &errb, false); err != nil {
				return toolError(fmt.Sprintf("list targets: %v %s", err, strings.TrimSpace(errb.String()))), nil, nil
			}
			var all []policy.TargetAccess // JSON lines, one target per line
			for dec := json.NewDecoder(&out); ; {
				var t policy.TargetAccess
				if err := dec.Decode(&t); err == io.EOF {
					break
				} else if err != nil {
					return nil, nil, fmt.Errorf("list targets: %w", err)
				}
				all = append(all, t)
			}
			type target struct {
				Name    string   `json:"name"`
				DBUsers []string `json:"db_users"`
			}
			var pg []target
			for _, t := range all {
				if t.Kind == policy.KindPostgres {
					pg = append(pg, target{t.Name, t.DBUsers})
				}
			}
			return toolJSON(pg), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "describe", Description: "List the tables and columns of a database that this identity may see."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in mcpTarget) (*mcp.CallToolResult, any, error) {
			return sqlTool(ctx, st, bastion.SQLRequest{Target: in.Target, Database: in.Database, User: in.User, MaxRows: 2000,
				SQL: "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns " +
					"WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_schema, table_name, ordinal_position"})
		})
	mcp.AddTool(s, &mcp.Tool{Name: "query", Description: "Run SQL on a database through the bastion. Blocked statements come back as errors naming the rule; held ones name the approval request; masked values read ********."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in mcpQuery) (*mcp.CallToolResult, any, error) {
			if in.MaxRows <= 0 {
				in.MaxRows = 100
			}
			return sqlTool(ctx, st, bastion.SQLRequest{Target: in.Target, Database: in.Database, User: in.User, SQL: in.SQL, MaxRows: in.MaxRows})
		})
	mcp.AddTool(s, &mcp.Tool{Name: "result", Description: "The answer of a query that was held for approval, by the session_id the query returned: still held, its rows once approved, or why it did not run (denied, timed out). Each answer is given once."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in mcpResult) (*mcp.CallToolResult, any, error) {
			if !validSessionID(in.SessionID) {
				return toolError("session_id: not a session ID a held query returned"), nil, nil
			}
			code, resp, err := sqlAPI(ctx, st, http.MethodGet, strings.Replace(bastion.PathSQLStatus, "{id}", in.SessionID, 1), nil)
			if err != nil {
				return toolError(err.Error()), nil, nil
			}
			return sqlAnswer(code, resp), nil, nil
		})
	return s
}

// toolError is a tool error. Its text quotes what the database said (an
// error message quotes the value that failed), so it is made one line of
// visible text: a line break would let a value write a line in the tool's
// own voice ("bastion: approved"), and escape sequences act on a terminal
// that shows tool output.
func toolError(msg string) *mcp.CallToolResult {
	msg = strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(safetext.Visible(msg))
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// toolJSON is a tool result as JSON. encoding/json escapes the C0 controls
// in the database's values but not the C1 ones (U+009B is CSI to a
// terminal): they are escaped too.
func toolJSON(v any) *mcp.CallToolResult {
	b, _ := json.MarshalIndent(v, "", " ")
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(safetext.EscapeC1(b))}}}
}

// sqlTool runs req through the SQL API and says what happened in words
// and JSON a model can read.
func sqlTool(ctx context.Context, st *login.State, req bastion.SQLRequest) (*mcp.CallToolResult, any, error) {
	body, _ := json.Marshal(req)
	code, resp, err := sqlAPI(ctx, st, http.MethodPost, bastion.PathSQL, body)
	if err != nil {
		return toolError(err.Error()), nil, nil
	}
	return sqlAnswer(code, resp), nil, nil
}

// sqlAnswer is an SQL API answer as a tool result.
func sqlAnswer(code int, resp bastion.SQLResponse) *mcp.CallToolResult {
	switch {
	case code == http.StatusAccepted:
		return toolJSON(map[string]string{"status": "held", "session_id": resp.SessionID,
			"message": fmt.Sprintf("held for approval: request %s waits for an approver (`bastion approve %s`); the statement has not run yet: ask the result tool with this session_id later", resp.RequestID, resp.RequestID)})
	case resp.Error != nil:
		return toolError(fmt.Sprintf("refused or failed (SQLSTATE %s): %s", resp.Error.SQLState, resp.Error.Message))
	case code != http.StatusOK:
		return toolError(fmt.Sprintf("the SQL API answered %d", code))
	}
	return toolJSON(map[string]any{"columns": resp.Columns, "rows": resp.Rows, "truncated": resp.Truncated, "tags": resp.Tags})
}

// validSessionID reports whether s can be a session ID (a ULID): it goes
// into the status URL's path.
func validSessionID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// sqlAPI sends one request to the SQL API with the login's access token.
func sqlAPI(ctx context.Context, st *login.State, method, path string, body []byte) (int, bastion.SQLResponse, error) {
	var resp bastion.SQLResponse
	tok, err := os.ReadFile(st.AccessTokenPath)
	if err != nil {
		return 0, resp, fmt.Errorf("access token: %w", err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, st.BastionURL+path, rd)
	if err != nil {
		return 0, resp, err
	}
	hr.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 5 * time.Minute}
	r, err := c.Do(hr)
	if err != nil {
		return 0, resp, err
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(&resp); err != nil {
		return r.StatusCode, resp, fmt.Errorf("the SQL API answered %s without JSON", r.Status)
	}
	return r.StatusCode, resp, nil
}
