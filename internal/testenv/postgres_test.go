package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestStartPostgres(t *testing.T) {
	pg := StartPostgres(t, PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2); GRANT SELECT ON t TO app;"},
	})

	t.Run("certificate login works", func(t *testing.T) {
		conn := pg.Connect(t, "app", "shop")
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("query: %v", err)
		}
		if n != 2 {
			t.Errorf("got %d rows, want 2", n)
		}
	})

	refused := map[string]func(*pgx.ConnConfig){
		"no client certificate": func(c *pgx.ConnConfig) { c.TLSConfig = pg.ServerTLS() },
		"no TLS":                func(c *pgx.ConnConfig) { c.TLSConfig = nil },
		"certificate from another CA": func(c *pgx.ConnConfig) {
			other := NewPostgresCA(t, "other")
			c.TLSConfig = pg.ServerTLS()
			c.TLSConfig.Certificates = []tls.Certificate{other.IssueClient(t, "app", time.Hour)}
		},
		"certificate for another user": func(c *pgx.ConnConfig) {
			c.TLSConfig = pg.ClientTLS(t, "postgres")
		},
	}
	for name, mod := range refused {
		t.Run("refused: "+name, func(t *testing.T) {
			cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=disable", pg.Port))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Fallbacks = nil
			mod(cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err == nil {
				conn.Close(ctx)
				t.Fatal("got a connection, want refusal")
			}
			t.Logf("refused: %v", err)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "28000" {
				t.Errorf("got error %q, want SQLSTATE 28000 (invalid authorization)", err)
			}
		})
	}
}
