package fakedns

import (
	"context"
	"encoding/binary"
	"strings"

	"github.com/tungate/tungate/forwarder/dns"
)

// DNS message layout and codes (RFC 1035 4.1, RFC 3596).
const (
	headerLen   = 12
	maxNameWire = 255 // a name's length on the wire, labels and length bytes
	maxLabel    = 63

	typeA    = 1
	typeAAAA = 28
	classIN  = 1

	rcodeFormErr  = 1
	rcodeNXDomain = 3
	rcodeNotImp   = 4
)

var _ dns.Answerer = (*Resolver)(nil)

// Answer implements forwarder/dns's Answerer: it returns the response to one
// DNS query (without the TCP length prefix), or nil for a message that is
// not a query at all, which is best dropped. It never fails and never
// blocks (so dns.Options.Inline holds); network ("udp" or "tcp") and ctx
// are unused: answers are a few hundred bytes at most, never truncated.
//
// A and AAAA queries for a host name get one address from the table;
// queries of other types for a host name get an empty answer (NOERROR, as
// for a name that exists without records of that type), so programs that
// ask for MX, TXT, SRV or HTTPS records fall back quietly. Names that are
// not host names (letters, digits, '-' and '_' labels) and localhost get
// NXDOMAIN: a proxy cannot be asked for them; so do names that
// Options.Blocked reports. Opcodes other than QUERY and
// classes other than IN get NOTIMP, malformed questions FORMERR.
func (r *Resolver) Answer(ctx context.Context, network string, query []byte) ([]byte, error) {
	return r.answer(query), nil
}

func (r *Resolver) answer(q []byte) []byte {
	if len(q) < headerLen || q[2]&0x80 != 0 {
		return nil
	}
	opcode := q[2] >> 3 & 0xf
	qd := binary.BigEndian.Uint16(q[4:])
	var name []string
	var qtype, qclass uint16
	end, ok := 0, false
	if qd == 1 {
		name, qtype, qclass, end, ok = parseQuestion(q, headerLen)
	}
	switch {
	case !ok:
		return reply(q, headerLen, 0, rcodeFormErr, nil)
	case opcode != 0 || qclass != classIN:
		return reply(q, end, 1, rcodeNotImp, nil)
	}
	host, ok := hostName(name)
	switch {
	case !ok || (r.blocked != nil && host != "" && r.blocked(host)):
		return reply(q, end, 1, rcodeNXDomain, nil)
	case host == "" || (qtype != typeA && qtype != typeAAAA):
		return reply(q, end, 1, 0, nil)
	}
	v4, v6 := r.Lookup(host)
	rdata := v4.AsSlice()
	if qtype == typeAAAA {
		rdata = v6.AsSlice()
	}
	// The owner name is a pointer to the question's name, at offset 12.
	rr := []byte{0xc0, headerLen}
	rr = binary.BigEndian.AppendUint16(rr, qtype)
	rr = binary.BigEndian.AppendUint16(rr, classIN)
	rr = binary.BigEndian.AppendUint32(rr, r.ttl)
	rr = binary.BigEndian.AppendUint16(rr, uint16(len(rdata)))
	return reply(q, end, 1, 0, append(rr, rdata...))
}

// parseQuestion reads the question at off: the name's labels as they are,
// its type and class, and where it ends. Compression pointers are refused:
// a query's only name cannot point back at anything.
func parseQuestion(b []byte, off int) (labels []string, qtype, qclass uint16, end int, ok bool) {
	start := off
	for {
		if off >= len(b) || off-start >= maxNameWire {
			return nil, 0, 0, 0, false
		}
		l := int(b[off])
		if l == 0 {
			break
		}
		if l > maxLabel || off+1+l > len(b) {
			return nil, 0, 0, 0, false
		}
		labels = append(labels, string(b[off+1:off+1+l]))
		off += 1 + l
	}
	off++ // the root label
	if off-start > maxNameWire || off+4 > len(b) {
		return nil, 0, 0, 0, false
	}
	return labels, binary.BigEndian.Uint16(b[off:]), binary.BigEndian.Uint16(b[off+2:]), off + 4, true
}

// hostName joins labels into a lower-case host name; false if a label
// holds anything but letters, digits, '-' and '_', or the name is
// localhost (RFC 6761: never sent to a resolver elsewhere).
func hostName(labels []string) (string, bool) {
	for _, l := range labels {
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	name := strings.ToLower(strings.Join(labels, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return "", false
	}
	return name, true
}

// reply builds a response from q's header and its first qEnd bytes (the
// header and qd questions), with rcode and at most one answer record.
func reply(q []byte, qEnd int, qd uint16, rcode byte, answer []byte) []byte {
	r := make([]byte, 0, qEnd+len(answer))
	r = append(r, q[:qEnd]...)
	r[2] = 0x80 | q[2]&0x79 // QR; keep opcode and RD; clear AA and TC
	r[3] = 0x80 | rcode     // RA
	binary.BigEndian.PutUint16(r[4:], qd)
	an := uint16(0)
	if answer != nil {
		an = 1
	}
	binary.BigEndian.PutUint16(r[6:], an)
	clear(r[8:headerLen])
	return append(r, answer...)
}
