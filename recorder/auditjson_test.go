package recorder

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

var auditJSONCases = []AuditEvent{
	{},
	{ID: "01J", Time: time.Date(2026, 12, 5, 16, 0, 0, 123456789, time.UTC), Type: "sql.statement", User: "alice",
		Fields: map[string]string{"sql": "SELECT * FROM t WHERE a = $1", "rows": "1", "db_user": "app"}},
	{Type: "x", Reason: `quote " backslash \ <script>&</script>`, Fields: map[string]string{}},
	{Type: "\x00\x01\x08\x0c\n\r\t\x1f\x7f", Outcome: "\u2028\u2029 é ☃ 😀"},
	{Type: "bad \xff\xfe utf-8 \xe2\x80", Target: "\xed\xa0\x80", Fields: map[string]string{"\xff": "<", "": ""}},
	{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Issuer: "https://idp", Subject: "s", SessionID: "id"},
}

// TestAuditEventJSON: the hand-written encoder gives json.Marshal's bytes.
func TestAuditEventJSON(t *testing.T) {
	for _, ev := range auditJSONCases {
		checkAuditJSON(t, ev)
	}
	if _, err := appendEventJSON(nil, &AuditEvent{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("a time json.Marshal refuses was encoded")
	}
}

func checkAuditJSON(t *testing.T, ev AuditEvent) {
	t.Helper()
	want, werr := json.Marshal(ev)
	got, gerr := appendEventJSON(nil, &ev)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
		t.Errorf("%#v:\n got %s (%v)\nwant %s (%v)", ev, got, gerr, want, werr)
	}
}

func FuzzAuditEventJSON(f *testing.F) {
	for _, ev := range auditJSONCases {
		f.Add(ev.ID, ev.Type, ev.Reason, ev.Outcome, "k", "v", ev.Time.UnixNano())
	}
	f.Fuzz(func(t *testing.T, id, typ, reason, outcome, k, v string, ns int64) {
		ev := AuditEvent{ID: id, Type: typ, Reason: reason, Outcome: outcome, Time: time.Unix(0, ns).UTC()}
		if k != "" || v != "" {
			ev.Fields = map[string]string{k: v, v: k}
		}
		checkAuditJSON(t, ev)
	})
}

// BenchmarkAuditEventJSON: a statement's audit event, by json.Marshal and by the encoder.
func BenchmarkAuditEventJSON(b *testing.B) {
	ev := auditJSONCases[1]
	ev.SessionID, ev.Target, ev.Outcome = "01JEXAMPLE", "pg1", "ok"
	ev.Fields["outcome"], ev.Fields["tag"], ev.Fields["duration_us"], ev.Fields["database"] = "ok", "SELECT 1", "120", "bench"
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendEventJSON", func(b *testing.B) {
		for b.Loop() {
			if _, err := appendEventJSON(make([]byte, 0, 512), &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
