package dns

import (
	"context"
	"errors"
	"testing"
)

// fixedAnswerer answers every query with ans, or fails with err.
type fixedAnswerer struct {
	ans []byte
	err error
}

func (f fixedAnswerer) Answer(context.Context, string, []byte) ([]byte, error) { return f.ans, f.err }

func TestCountingByTypeAndOutcome(t *testing.T) {
	var counts QueryCounts
	aaaa := query(7, "example.com")
	aaaa[len(aaaa)-3] = 28 // type AAAA
	nx := append([]byte(nil), aaaa...)
	nx[2], nx[3] = 0x81, 0x83 // a response, NXDOMAIN
	for _, a := range []Answerer{fixedAnswerer{ans: nx}, fixedAnswerer{err: errors.New("upstream down")}, fixedAnswerer{}} {
		(&Counting{Answerer: a, Counts: &counts}).Answer(context.Background(), "udp", aaaa)
	}
	(&Counting{Answerer: fixedAnswerer{ans: nx}, Counts: &counts}).Answer(context.Background(), "udp", []byte{1})
	for _, tc := range []struct{ typ, outcome int }{{1, 3}, {1, outcomeFailed}, {1, outcomeNone}, {otherType, 3}} {
		if got := counts.Count(tc.typ, tc.outcome); got != 1 {
			t.Errorf("%s/%s = %d, want 1", QueryTypes[tc.typ], QueryOutcomes[tc.outcome], got)
		}
	}
}
