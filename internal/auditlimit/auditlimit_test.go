package auditlimit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBurstThenRate lets the burst through, holds back the rest until the
// bucket refills at the rate, and sums up what it held back.
func TestBurstThenRate(t *testing.T) {
	var mu sync.Mutex
	var got []Summary
	l := New(3, 2, time.Hour, func(s Summary) { mu.Lock(); got = append(got, s); mu.Unlock() })
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if !l.Allow("a", "sig") {
			t.Fatalf("record %d of the burst held back", i)
		}
	}
	for range 5 {
		if l.Allow("b", "sig") {
			t.Fatal("a record past the burst went through")
		}
	}
	now = now.Add(500 * time.Millisecond) // one token at 2 a second
	if !l.Allow("c", "sig") {
		t.Fatal("the refilled token was not used")
	}
	if l.Allow("d", "sig") {
		t.Fatal("two records went through on one token")
	}
	now = now.Add(time.Hour) // the bucket is full again, no more
	for i := range 3 {
		if !l.Allow("e", "sig") {
			t.Fatalf("record %d after the refill held back", i)
		}
	}
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Count != 6 || got[0].LastRemote != "d" || got[0].Reasons["sig"] != 6 {
		t.Fatalf("summaries: %+v", got)
	}
	if f := got[0].Fields("ssh.login"); f["reasons"] != "sig=6" || f["sources"] != "b=5,d=1" || f["count"] != "6" {
		t.Fatalf("fields: %v", f)
	}
	if got[0].First.After(got[0].Last) {
		t.Fatalf("first %v after last %v", got[0].First, got[0].Last)
	}
}

// TestSummaryEveryPeriod emits a summary a period after the first record
// held back, and a new one for what is held back after that.
func TestSummaryEveryPeriod(t *testing.T) {
	got := make(chan Summary, 4)
	l := New(1, 0.001, 50*time.Millisecond, func(s Summary) { got <- s })
	defer l.Close()
	l.Allow("x", "sig")
	l.Allow("y", "sig")
	l.Allow("z", "sig")
	// Two suppressed: one summary of both, or (when this goroutine stalls
	// past a period between them, as on a loaded machine) one each.
	for n := 0; n < 2; {
		select {
		case s := <-got:
			n += s.Count
			if s.Count < 1 || n > 2 || n == 2 && s.LastRemote != "z" {
				t.Fatalf("summary %+v after %d suppressed", s, n-s.Count)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no summary")
		}
	}
	l.Allow("w", "sig")
	select {
	case s := <-got:
		if s.Count != 1 || s.LastRemote != "w" {
			t.Fatalf("second summary %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no second summary")
	}
}

// TestConcurrent is for -race.
func TestConcurrent(t *testing.T) {
	var n sync.WaitGroup
	var mu sync.Mutex
	total := 0
	l := New(10, 1, time.Millisecond, func(s Summary) { mu.Lock(); total += s.Count; mu.Unlock() })
	var allowed sync.Map
	for g := range 8 {
		n.Add(1)
		go func() {
			defer n.Done()
			for i := range 200 {
				if l.Allow("r", "sig") {
					allowed.Store([2]int{g, i}, true)
				}
			}
		}()
	}
	n.Wait()
	l.Close()
	time.Sleep(20 * time.Millisecond) // a timer that fired before Close stopped it
	passed := 0
	allowed.Range(func(any, any) bool { passed++; return true })
	mu.Lock()
	defer mu.Unlock()
	if passed+total != 1600 {
		t.Fatalf("%d passed and %d held back of 1600", passed, total)
	}
}

// TestSourcesBounded counts sources by address without the port, at most
// maxSources of them and the rest as other, most first; a source that
// keeps sending is kept, however many came before it.
func TestSourcesBounded(t *testing.T) {
	var got Summary
	l := New(1, 0.001, time.Hour, func(s Summary) { got = s })
	for i := range 100 {
		l.Allow(fmt.Sprintf("10.0.0.%d:%d", i%40, 40000+i), "unknown_ca")
	}
	for range 10 {
		l.Allow("[2001:db8::1]:22", "expired")
	}
	l.Close()
	if got.Count != 109 || len(got.Sources) != maxSources+1 || got.Sources["2001:db8::1"] != 10 || got.Sources["other"] == 0 {
		t.Fatalf("summary: %+v", got)
	}
	n := 0
	for _, c := range got.Sources {
		n += c
	}
	if n != got.Count {
		t.Fatalf("sources add up to %d of %d", n, got.Count)
	}
	if f := got.Fields("ssh.login"); !strings.HasPrefix(f["sources"], "2001:db8::1=10,") || f["reasons"] != "unknown_ca=99,expired=10" {
		t.Fatalf("fields: %v", f)
	}
}
