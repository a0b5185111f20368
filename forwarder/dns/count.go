package dns

import (
	"context"
	"encoding/binary"
	"sync/atomic"
)

// QueryTypes are the query types counted on their own; the rest count as
// "other".
var QueryTypes = [...]string{"A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS", "SOA", "HTTPS", "SVCB", "ANY", "other"}

var queryTypeCodes = map[uint16]int{1: 0, 28: 1, 5: 2, 15: 3, 16: 4, 33: 5, 12: 6, 2: 7, 6: 8, 65: 9, 64: 10, 255: 11}

const otherType = len(QueryTypes) - 1

// QueryOutcomes are how a query ends: the answer's RCODE, "failed" (the
// Answerer failed; the client got SERVFAIL) or "unanswered" (no answer).
var QueryOutcomes = [...]string{"noerror", "formerr", "servfail", "nxdomain", "notimp", "refused", "other_rcode", "failed", "unanswered"}

const (
	outcomeOtherRcode = 6
	outcomeFailed     = 7
	outcomeNone       = 8
)

// QueryCounts counts answered queries by type and outcome, with atomic
// adds. The zero value is ready; it is safe for concurrent use.
type QueryCounts struct {
	n [len(QueryTypes)][len(QueryOutcomes)]atomic.Uint64
}

// Count returns the count for QueryTypes[typ] and QueryOutcomes[outcome].
func (c *QueryCounts) Count(typ, outcome int) uint64 { return c.n[typ][outcome].Load() }

func (c *QueryCounts) add(q, ans []byte, err error) {
	typ := otherType
	if len(q) >= headerLen && binary.BigEndian.Uint16(q[4:]) == 1 {
		if end, ok := questionEnd(q, headerLen); ok {
			if i, ok := queryTypeCodes[binary.BigEndian.Uint16(q[end-4:])]; ok {
				typ = i
			}
		}
	}
	outcome := outcomeNone
	switch {
	case err != nil:
		outcome = outcomeFailed
	case len(ans) >= headerLen:
		outcome = min(int(ans[3]&0xf), outcomeOtherRcode)
	}
	c.n[typ][outcome].Add(1)
}

// Counting is an Answerer that counts the answers of another into Counts.
type Counting struct {
	Answerer Answerer
	Counts   *QueryCounts
}

// Answer implements Answerer.
func (c *Counting) Answer(ctx context.Context, network string, query []byte) ([]byte, error) {
	ans, err := c.Answerer.Answer(ctx, network, query)
	c.Counts.add(query, ans, err)
	return ans, err
}
