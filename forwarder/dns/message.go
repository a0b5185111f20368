package dns

import "encoding/binary"

// headerLen is the size of a DNS message header (RFC 1035 4.1.1).
const headerLen = 12

// Header bits and fields used here.
const (
	flagQR        = 0x80 // in byte 2: this is a response
	flagRA        = 0x80 // in byte 3: recursion available
	rcodeServFail = 2
)

// idOf returns a message's ID, or false if b is too short to be a message.
func idOf(b []byte) (uint16, bool) {
	if len(b) < headerLen {
		return 0, false
	}
	return binary.BigEndian.Uint16(b), true
}

// isResponse reports whether b is a response to a query with this ID.
func isResponse(b []byte, id uint16) bool {
	got, ok := idOf(b)
	return ok && got == id && b[2]&flagQR != 0
}

// serverFailure builds a SERVFAIL response to q, echoing its question when
// q has exactly one, or nil if q is not a query at all.
func serverFailure(q []byte) []byte {
	if len(q) < headerLen || q[2]&flagQR != 0 {
		return nil
	}
	end := headerLen
	qd := binary.BigEndian.Uint16(q[4:])
	if qd == 1 {
		if n, ok := questionEnd(q, headerLen); ok {
			end = n
		} else {
			qd = 0
		}
	} else {
		qd = 0
	}
	r := append([]byte(nil), q[:end]...)
	r[2] = flagQR | q[2]&0x79 // keep opcode and RD; clear AA and TC
	r[3] = flagRA | rcodeServFail
	binary.BigEndian.PutUint16(r[4:], qd)
	clear(r[6:headerLen])
	return r
}

// questionEnd returns the offset just past the question that starts at off
// (a name, then type and class).
func questionEnd(b []byte, off int) (int, bool) {
	for {
		if off >= len(b) {
			return 0, false
		}
		l := int(b[off])
		switch {
		case l == 0:
			off++
			if off+4 > len(b) {
				return 0, false
			}
			return off + 4, true
		case l&0xc0 == 0xc0: // compression pointer ends the name
			off += 2
			if off+4 > len(b) {
				return 0, false
			}
			return off + 4, true
		case l&0xc0 != 0:
			return 0, false
		default:
			off += 1 + l
		}
	}
}
