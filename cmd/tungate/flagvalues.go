package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// deviceURL is the value of --device: tun://NAME or fd://N.
type deviceURL struct {
	name string
	fd   int // -1 unless fd://N
}

func (d *deviceURL) String() string {
	if d.fd >= 0 {
		return "fd://" + strconv.Itoa(d.fd)
	}
	return "tun://" + d.name
}

func (d *deviceURL) Set(s string) error {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return fmt.Errorf("want tun://NAME or fd://N")
	}
	switch scheme {
	case "tun":
		if rest == "" || len(rest) > 15 || strings.ContainsAny(rest, "/ \t:") {
			return fmt.Errorf("want tun://NAME with NAME a valid interface name of 1 to 15 characters")
		}
		d.name, d.fd = rest, -1
	case "fd":
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return fmt.Errorf("want fd://N with N a file descriptor number")
		}
		d.name, d.fd = "", n
	default:
		return fmt.Errorf("unknown scheme %q: want tun://NAME or fd://N", scheme)
	}
	return nil
}

func (d *deviceURL) Type() string { return "URL" }

// prefixList is a repeatable CIDR flag. The first Set replaces the
// defaults.
type prefixList struct {
	values []netip.Prefix
	set    bool
}

func (p *prefixList) String() string {
	s := make([]string, len(p.values))
	for i, v := range p.values {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(s string) error {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("want an address with prefix length, such as 198.18.0.1/24 or fd74:6761:7465::1/64")
		}
		out = append(out, pfx)
	}
	if !p.set {
		p.values, p.set = nil, true
	}
	p.values = append(p.values, out...)
	return nil
}

func (p *prefixList) Type() string { return "CIDR" }

// logLevel is the value of --log-level.
type logLevel struct{ level slog.Level }

func (l *logLevel) String() string { return strings.ToLower(l.level.String()) }

func (l *logLevel) Set(s string) error {
	switch strings.ToLower(s) {
	case "debug":
		l.level = slog.LevelDebug
	case "info":
		l.level = slog.LevelInfo
	case "warn", "warning":
		l.level = slog.LevelWarn
	case "error":
		l.level = slog.LevelError
	default:
		return fmt.Errorf("want debug, info, warn or error")
	}
	return nil
}

func (l *logLevel) Type() string { return "LEVEL" }

// intValue is an integer flag whose range is checked at parse time.
type intValue struct {
	p        *int
	min, max int
}

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

func (v intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil || n < int64(v.min) || n > int64(v.max) {
		return fmt.Errorf("want a whole number from %d to %d", v.min, v.max)
	}
	*v.p = int(n)
	return nil
}

func (v intValue) Type() string { return "N" }

// markValue is a 32-bit socket mark, decimal or 0x-prefixed hex.
type markValue struct{ p *uint32 }

func (v markValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*v.p), 10)
}

func (v markValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return fmt.Errorf("want a mark from 0 to 4294967295, decimal or 0x hex")
	}
	*v.p = uint32(n)
	return nil
}

func (v markValue) Type() string { return "N" }

// durationValue is a positive duration.
type durationValue struct{ p *time.Duration }

func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration such as 500ms, 10s or 2m")
	}
	*v.p = d
	return nil
}

func (v durationValue) Type() string { return "DURATION" }
