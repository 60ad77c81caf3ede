package pgproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzSession runs whole sessions with arbitrary bytes from the client (after a valid
// startup) and from the server (after a valid authentication): the proxy may refuse
// them, never panic, hang or leave goroutines behind.
func FuzzSession(f *testing.F) {
	ready := bytes.Join([][]byte{
		appendAuthOK(nil),
		appendParameterStatus(nil, "standard_conforming_strings", "on"),
		appendParameterStatus(nil, "client_encoding", "UTF8"),
		appendBackendKeyData(nil, 1, 2),
		appendReadyForQuery(nil, 'I'),
	}, nil)
	result := bytes.Join([][]byte{
		msg('T', u16(2), cs("card"), i32(0), u16(0), i32(25), u16(0xffff), i32(-1), u16(0), cs("secret"), i32(0), u16(0), i32(25), u16(0xffff), i32(-1), u16(1)),
		msg('D', u16(2), i32(19), []byte("4111 1111 1111 1111"), i32(3), []byte("abc")),
		msg('C', cs("SELECT 1")),
		appendReadyForQuery(nil, 'I'),
	}, nil)
	f.Add(appendQuery(nil, "SELECT card, secret FROM t"), result)
	f.Add(appendQuery(nil, "DROP TABLE t"), bytes.Join([][]byte{msg('E', []byte{'C'}, cs("42601"), []byte{'M'}, cs("syntax error"), []byte{0}), appendReadyForQuery(nil, 'I')}, nil))
	f.Add(bytes.Join([][]byte{appendParse(nil, "s", "SELECT 1"), msg('B', cs(""), cs("s"), u16(0), u16(0), u16(1), u16(1)), msg('D', []byte{'P'}, cs("")), msg('E', cs(""), i32(0)), msg('S')}, nil),
		bytes.Join([][]byte{msg('1'), msg('2'), result[:len(result)-6], appendReadyForQuery(nil, 'I')}, nil))
	f.Add(appendQuery(nil, "COPY t FROM STDIN"), bytes.Join([][]byte{msg('G', []byte{0}, u16(0)), msg('C', cs("COPY 0")), appendReadyForQuery(nil, 'I')}, nil))
	f.Add([]byte{'Q', 0, 0, 0, 3}, []byte{'Z', 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, client, server []byte) {
		if len(client) > 1<<14 || len(server) > 1<<14 {
			return
		}
		// Unix sockets, not loopback TCP: thousands of runs would exhaust the ephemeral
		// ports with connections in TIME_WAIT.
		up, err := net.Listen("unix", fuzzSocket())
		if err != nil {
			t.Fatal(err)
		}
		defer up.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the server: authenticate, then say whatever the fuzzer says
			defer wg.Done()
			c, err := up.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			wg.Add(1)
			go func() { // later connections are cancel requests: read and close
				defer wg.Done()
				for {
					cc, err := up.Accept()
					if err != nil {
						return
					}
					cc.SetDeadline(time.Now().Add(5 * time.Second))
					readStartup(cc, 64)
					cc.Close()
				}
			}()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := readStartup(c, 1<<14); err != nil {
				return
			}
			c.Write(ready)
			c.Write(server)
			c.(*net.UnixConn).CloseWrite()
			io.Copy(io.Discard, c)
		}()
		p, err := New(Config{
			DialUpstream: func(ctx context.Context) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", up.Addr().String())
			},
			Password:  func(context.Context, string) (string, error) { return "x", nil },
			Authorize: func(context.Context, Startup) error { return nil },
			Judge: func(_ context.Context, st Statement) Verdict {
				if st.Has("drop_table") {
					return Verdict{Action: Block, Rule: "no-drop"}
				}
				if st.Has("update") {
					return Verdict{Action: Hold, RequestID: "r", Wait: func(context.Context) (Verdict, error) { return Verdict{Action: Allow}, nil }}
				}
				return Verdict{Action: Allow}
			},
			MaskColumn:     func(c string) bool { return c == "secret" },
			MaskValue:      luhnMask,
			Transcript:     io.Discard,
			Cancels:        NewCancelRegistry(),
			Limits:         Limits{MaxMessage: 1 << 14, StartupTimeout: 5 * time.Second},
			TranscriptRows: 5,
		})
		if err != nil {
			t.Fatal(err)
		}
		front, err := net.Listen("unix", fuzzSocket())
		if err != nil {
			t.Fatal(err)
		}
		defer front.Close()
		served := make(chan struct{})
		go func() {
			defer close(served)
			c, err := front.Accept()
			if err != nil {
				return
			}
			p.Serve(context.Background(), c)
		}()
		c, err := net.Dial("unix", front.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"database", "db"}}))
		c.Write(client)
		c.(*net.UnixConn).CloseWrite()
		io.Copy(io.Discard, c)
		select {
		case <-served:
		case <-time.After(15 * time.Second):
			t.Fatal("Serve did not return")
		}
		up.Close()
		wg.Wait()
	})
}

var fuzzSocketSeq atomic.Uint64

// fuzzSocket names an abstract Unix socket (Linux): nothing to clean up.
func fuzzSocket() string {
	return fmt.Sprintf("@pgproxy-fuzz-%d-%d", os.Getpid(), fuzzSocketSeq.Add(1))
}
