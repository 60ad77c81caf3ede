package bastion

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// maxWriteRecorder records an answer and the largest single write.
type maxWriteRecorder struct {
	*httptest.ResponseRecorder
	max int
}

func (m *maxWriteRecorder) Write(p []byte) (int, error) {
	m.max = max(m.max, len(p))
	return m.ResponseRecorder.Write(p)
}

// TestWriteSQLStreamsRows: an answer is written a row at a time. Encoded
// whole, its JSON was a second copy of the answer in memory, and up to six
// times its size: encoding/json writes a control character as \u00XX, so
// 16 MiB of row values (sql_api.max_bytes) became a 96 MiB buffer, and
// C1 controls' escapes a copy of that again. And the answer reads the same.
func TestWriteSQLStreamsRows(t *testing.T) {
	ctl := strings.Repeat("\x01\u009b", 32<<10) // 96 KiB, six times that as JSON
	s := func(v string) *string { return &v }
	var rows [][]*string
	for range 16 {
		rows = append(rows, []*string{s(ctl), nil, s("a\"b")})
	}
	for name, resp := range map[string]SQLResponse{
		"rows":            {SessionID: "01J", Status: "ok", Columns: []string{"c", "n", "q"}, Rows: rows, Truncated: true, Tags: []string{"SELECT 16"}, Notices: []string{"n\u009b"}},
		"rows, no tail":   {SessionID: "01J", Status: "ok", Columns: []string{"c", "n", "q"}, Rows: rows},
		"rows and error":  {SessionID: "01J", Status: "error", Columns: []string{"c", "n", "q"}, Rows: rows[:1], Tags: []string{"SELECT 1"}, Error: &SQLError{SQLState: "42501", Message: "blocked"}},
		"empty row":       {SessionID: "01J", Status: "ok", Rows: [][]*string{{}}},
		"no rows":         {SessionID: "01J", Status: "ok", Columns: []string{"c"}, Tags: []string{"SELECT 0"}},
		"error":           {Status: "error", Error: &SQLError{Message: "no"}},
		"held":            {SessionID: "01J", Status: "held", RequestID: "ab12", StatusURL: "/v1/sql/01J"},
		"columns, no row": {SessionID: "01J", Status: "ok", Columns: []string{"\u009b"}, Rows: [][]*string{}},
	} {
		t.Run(name, func(t *testing.T) {
			rec := &maxWriteRecorder{ResponseRecorder: httptest.NewRecorder()}
			writeSQL(rec, 200, resp)
			raw := rec.Body.Bytes()
			if bytes.Contains(raw, []byte("\u009b")) {
				t.Errorf("a C1 control raw in the answer")
			}
			var got SQLResponse
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("%v: %.200s", err, raw)
			}
			if dec.More() || !bytes.HasSuffix(raw, []byte("}\n")) {
				t.Errorf("trailing data: %q", raw[max(0, len(raw)-20):])
			}
			want := resp
			if len(want.Rows) == 0 {
				want.Rows = nil // omitempty
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("reads otherwise: got %.300v", got)
			}
			if len(resp.Rows) > 1 && rec.max > 1<<20 {
				t.Errorf("the answer was written in one piece of %d bytes", rec.max)
			}
		})
	}
}
