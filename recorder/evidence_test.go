package recorder

import (
	"encoding/json"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A sink's copy of the audit log agrees with the local one only when the
// local records are what their hashes say: a record whose event was edited in
// the store, its stored hash left as it was, is not "intact" against a sink
// (the comparison used the stored hash field and never the content).
func TestCompareAuditSeesAnEditedLocalRecord(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	for range 5 {
		_, err := s.Audit(AuditEvent{Type: "session.exec", User: "alice", Reason: "rm -rf /srv/data"})
		must(t, err)
	}
	var lines []string
	_, err = s.AuditLines(0, 1<<20, func(l []byte) error { lines = append(lines, string(l)); return nil })
	must(t, err)
	must(t, s.Close())
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		var rec auditRecord
		if err := json.Unmarshal(b.Get(u64key(3)), &rec); err != nil {
			return err
		}
		rec.Event = json.RawMessage(strings.Replace(string(rec.Event), "rm -rf /srv/data", "ls -l /srv/data", 1))
		v, _ := json.Marshal(rec)
		return b.Put(u64key(3), v)
	})
	s2 := openStore(t, cfg)
	cmp, err := s2.CompareAudit(strings.NewReader(strings.Join(lines, "\n")))
	must(t, err)
	if cmp.Intact || cmp.BrokenAt != 3 {
		t.Fatalf("got intact=%v broken_at=%d %q, want broken at record 3", cmp.Intact, cmp.BrokenAt, cmp.Problem)
	}
}
