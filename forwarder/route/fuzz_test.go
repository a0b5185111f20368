package route

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseRule checks that ParseRule never panics, that its errors are one
// line wrapping ErrBadRule, and that a rule that parses round-trips: its
// Text parses to the same rule, and so does its canonical form.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8=direct", "fd00::/8=block", "domain:corp.example=corp", "port:8000-8999,tcp=proxy",
		"udp,icmp=block", "all=proxy", "::ffff:10.0.0.0/104=direct", "domain:*.x=y", "a=b=c", " , = ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := ParseRule(text, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrBadRule) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseRule(%q): error %q is not one line wrapping ErrBadRule", text, err)
			}
			return
		}
		again, err := ParseRule(r.Text, "fuzz")
		if err != nil || *again != *r {
			t.Fatalf("ParseRule(%q) = %+v, but its Text parses to %+v, %v", text, r, again, err)
		}
		canon := r.canonical()
		c, err := ParseRule(canon, "fuzz")
		if err != nil || c.c != r.c || c.Action != r.Action {
			t.Fatalf("ParseRule(%q) = %+v, but its canonical form %q parses to %+v, %v", text, r, canon, c, err)
		}
		// A parsed rule can be indexed and looked up.
		NewTable([]*Rule{r}).Lookup(&Flow{Proto: TCP, Name: "x.example"})
	})
}
