package bastion

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"slices"
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

// TestDecodeSQLRequest: a POST /v1/sql body reads one way or is refused.
// encoding/json alone matched names in any case, kept the last of a name
// given twice and ignored what followed the object: {"sql": "SELECT 1",
// "SQL": "DELETE FROM t"} ran the DELETE while a reader that matches
// names as written (a gateway's log, a review of an agent's tool call)
// saw the SELECT.
func TestDecodeSQLRequest(t *testing.T) {
	ok := SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "SELECT 1", MaxRows: 5}
	for _, tc := range []struct {
		name, body string
		want       *SQLRequest // nil: refused
		says       string
	}{
		{"plain", `{"target":"pg1","database":"shop","user":"app","sql":"SELECT 1","max_rows":5}`, &ok, ""},
		{"spaces and escapes", " {\"target\" : \"pg1\", \"database\":\"shop\",\"user\":\"app\",\"s\\u0071l\":\"SELECT 1\",\"max_rows\":5}\n\n", &ok, ""},
		{"without max_rows", `{"target":"pg1","database":"shop","user":"app","sql":"SELECT 1"}`, &SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "SELECT 1"}, ""},
		{"another case", `{"target":"pg1","database":"shop","user":"app","sql":"SELECT 1","SQL":"DELETE FROM t"}`, nil, `unknown field "SQL"`},
		{"only another case", `{"Target":"pg1"}`, nil, `unknown field "Target"`},
		{"twice", `{"target":"pg1","database":"shop","user":"app","sql":"SELECT 1","sql":"DELETE FROM t"}`, nil, `"sql" given twice`},
		{"twice, escaped", `{"sql":"SELECT 1","s\u0071l":"DELETE FROM t"}`, nil, "given twice"},
		{"trailing object", `{"sql":"SELECT 1"} {"sql":"DELETE FROM t"}`, nil, "data after"},
		{"trailing garbage", `{"sql":"SELECT 1"}x`, nil, ""},
		{"unknown", `{"sql":"SELECT 1","options":"-c x"}`, nil, `unknown field "options"`},
		{"unknown, long", `{"` + strings.Repeat("k", 5000) + `":1}`, nil, "unknown field"},
		{"array", `[{"sql":"SELECT 1"}]`, nil, "not a JSON object"},
		{"null", `null`, nil, "not a JSON object"},
		{"empty", ``, nil, "not a JSON object"},
		{"unterminated", `{"sql":"SELECT 1"`, nil, ""},
		{"not UTF-8", "{\"sql\":\"SELECT '\xff'\"}", nil, "not UTF-8"},
		{"wrong type", `{"max_rows":"5"}`, nil, ""},
		{"too large", `{"sql":"` + strings.Repeat("x", maxSQLBody) + `"}`, nil, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeSQLRequest([]byte(tc.body))
			switch {
			case tc.want == nil && err == nil:
				t.Fatalf("accepted: %+v", got)
			case tc.want == nil && !strings.Contains(err.Error(), tc.says):
				t.Fatalf("refused with %q, want it to say %q", err, tc.says)
			case tc.want != nil && (err != nil || got != *tc.want):
				t.Fatalf("%+v %v, want %+v", got, err, *tc.want)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("a refusal of %d bytes", len(err.Error()))
			}
		})
	}
}

// FuzzDecodeSQLRequest: what decodeSQLRequest accepts reads the same to a
// parser that keeps the first of a name given twice and matches names as
// written: it holds no name twice and no name in another case.
func FuzzDecodeSQLRequest(f *testing.F) {
	f.Add([]byte(`{"target":"pg1","database":"shop","user":"app","sql":"SELECT 1","max_rows":5}`))
	f.Add([]byte(`{"sql":"SELECT 1","SQL":"DELETE FROM t"}`))
	f.Add([]byte(`{"sql":"SELECT 1","s\u0071l":"x"}`))
	f.Add([]byte(`{"sql":"a"} {"sql":"b"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeSQLRequest(body)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			t.Fatalf("accepted what is not one JSON object: %q", body)
		}
		for k := range m {
			if !slices.Contains(sqlRequestFields, k) {
				t.Fatalf("accepted field %q: %q", k, body)
			}
		}
		if v, ok := m["sql"]; ok {
			var first string
			json.Unmarshal(v, &first)
			if first != req.SQL {
				t.Fatalf("sql reads %q and %q: %q", first, req.SQL, body)
			}
		}
	})
}
