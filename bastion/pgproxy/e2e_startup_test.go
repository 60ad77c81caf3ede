package pgproxy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestStartupParamsEndToEnd: only allowlisted startup parameters reach the server; the
// rest end the startup with a FATAL error naming them, while the startup packets psql,
// pgx and JDBC send by default pass.
func TestStartupParamsEndToEnd(t *testing.T) {
	pg := startCluster(t)
	h := startProxy(t, pg, nil)
	ctx := context.Background()
	for _, tc := range []struct{ name, value string }{
		{"role", "priv"}, {"ROLE", "priv"}, {"Role", "priv"}, {"session_authorization", "priv"},
		{"options", "-c role=priv"}, {"search_path", "evil,public"}, {"default_transaction_read_only", "off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, h.addr)
			c.Write(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"database", "shop"}, {tc.name, tc.value}}))
			fe := pgproto3.NewFrontend(c, c)
			m, err := fe.Receive()
			e, ok := m.(*pgproto3.ErrorResponse)
			if err != nil || !ok || e.Severity != "FATAL" || !strings.Contains(e.Message, fmt.Sprintf("%q is not allowed", tc.name)) {
				t.Fatalf("got %#v, %v; want FATAL naming %q", m, err, tc.name)
			}
		})
	}
	t.Run("psql with PGOPTIONS", func(t *testing.T) {
		cmd := h.psqlCmd(t, "", "-c", "SELECT current_user")
		cmd.Env = append(cmd.Env, "PGOPTIONS=-c role=priv")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), `"options" is not allowed`) {
			t.Errorf("got %q, %v; want the options parameter refused", out, err)
		}
	})
	t.Run("pgx with a runtime parameter", func(t *testing.T) {
		cfg, _ := pgx.ParseConfig(h.connString("app", "shop"))
		cfg.RuntimeParams["role"] = "priv"
		if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
			c.Close(ctx)
			t.Fatal("connected with role=priv")
		} else if !strings.Contains(err.Error(), `"role" is not allowed`) {
			t.Errorf("got %v, want role refused", err)
		}
	})
	t.Run("the defaults of psql, pgx and JDBC pass", func(t *testing.T) {
		if r := h.psql(t, "", "-A", "-t", "-c", "SELECT current_user"); r.err != nil || strings.TrimSpace(r.stdout) != "app" {
			t.Errorf("psql: %q %v %s", r.stdout, r.err, r.stderr)
		}
		cmd := h.psqlCmd(t, "", "-A", "-t", "-c", "SHOW TimeZone")
		cmd.Env = append(cmd.Env, "PGTZ=Europe/Paris", "PGDATESTYLE=ISO, DMY")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Europe/Paris") {
			t.Errorf("psql with PGTZ: %q %v", out, err)
		}
		var user string
		if err := h.connect(t, "app", "shop", nil).QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "app" {
			t.Errorf("pgx: %q %v", user, err)
		}
		// pgjdbc's startup packet, as it sends it.
		c := dial(t, h.addr)
		c.Write(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"database", "shop"},
			{"client_encoding", "UTF8"}, {"DateStyle", "ISO"}, {"TimeZone", "UTC"}, {"extra_float_digits", "3"}, {"application_name", "PostgreSQL JDBC Driver"}}))
		if got := untilReady(t, c); !strings.HasPrefix(got, "AuthenticationOk") || !strings.HasSuffix(got, "ReadyForQuery(I)") {
			t.Errorf("JDBC startup: got %s", got)
		}
	})
	t.Run("search_path when the config allows it", func(t *testing.T) {
		hs := startProxy(t, pg, func(c *Config) { c.StartupParams = []string{"search_path"} })
		cfg, _ := pgx.ParseConfig(hs.connString("app", "shop"))
		cfg.RuntimeParams["search_path"] = "pg_catalog, public"
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var sp string
		if err := conn.QueryRow(ctx, "SELECT current_setting('search_path')").Scan(&sp); err != nil || sp != "pg_catalog, public" {
			t.Errorf("got %q, %v", sp, err)
		}
	})
}
