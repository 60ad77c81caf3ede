package auditlimit

import (
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
	select {
	case s := <-got:
		if s.Count != 2 || s.LastRemote != "z" {
			t.Fatalf("summary %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no summary")
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
