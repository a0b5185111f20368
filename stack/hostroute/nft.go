package hostroute

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The nftables table keeps replies of connections that did not come out of
// the device from going into it. Policy routing alone cannot tell a server's
// reply from a new outbound packet; conntrack can:
//
//	table inet tungate {
//		chain prerouting {
//			type filter hook prerouting priority mangle;
//			iifname != DEVICE ct state new ct mark set MARK
//			ct mark MARK meta mark set MARK
//		}
//		chain postrouting {
//			type filter hook postrouting priority mangle;
//			oifname != DEVICE ct state new ct mark set MARK
//		}
//		chain output {
//			type route hook output priority mangle;
//			meta l4proto tcp ct state new tcp flags & syn == 0 ct mark set MARK
//			ct mark MARK meta mark set MARK
//		}
//	}
//
// The first rule marks inbound connections (and those forwarded through
// the host, which the capture rules leave alone anyway); the postrouting
// rule, connections that leave directly (tungate's own, exclusions, the
// LAN). The second gives their packets the packet mark on the way in too: with
// net.ipv4.conf.*.src_valid_mark=1 the strict reverse-path filter then
// validates them against the main table instead of the capture rules. The
// output chain's second rule marks TCP connections that conntrack first sees
// in the middle, after a non-SYN packet of this host: they were open before
// tungate started (an SSH session to this host, which conntrack may not have
// tracked until this table made it), and their packets must keep the route
// they had. The last gives the marked connections' local packets the mark
// that the first rule of the block sends to the main table; a route chain
// reroutes a packet whose mark it changed.

// nftTable is the table's identity.
var nftTable = &nftables.Table{Name: NFTable, Family: nftables.TableFamilyINet}

// addNFTable creates the table for device dev and mark.
func addNFTable(dev string, mark uint32) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("auto-route: nftables: %w", err)
	}
	t := c.AddTable(nftTable)
	pre := c.AddChain(&nftables.Chain{
		Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle,
	})
	out := c.AddChain(&nftables.Chain{
		Name: "output", Table: t, Type: nftables.ChainTypeRoute,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityMangle,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: markNewNotOn(expr.MetaKeyIIFNAME, dev, mark)})
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: ctMarkToMeta(mark)})
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityMangle,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: markNewNotOn(expr.MetaKeyOIFNAME, dev, mark)})
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(
		[]expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		},
		ctStateNew(),
		[]expr.Any{
			// The TCP flags byte is at offset 13 of the header.
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
		},
		setCtMark(mark),
	)})
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: ctMarkToMeta(mark)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("auto-route: add nftables table inet %s (does the kernel have nf_tables and conntrack?): %w", NFTable, permHint(err))
	}
	return nil
}

// nfTableExists reports whether the table is there.
func nfTableExists() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT) {
			return false, nil // no nf_tables: nothing can be left over
		}
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == NFTable {
			return true, nil
		}
	}
	return false, nil
}

// deleteNFTable deletes the table if it exists and reports whether it did.
func deleteNFTable() (bool, error) {
	ok, err := nfTableExists()
	if err != nil || !ok {
		return false, err
	}
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	c.DelTable(nftTable)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return false, fmt.Errorf("delete nftables table inet %s: %w", NFTable, err)
	}
	return true, nil
}

// ctMarkToMeta is `ct mark MARK meta mark set MARK`.
func ctMarkToMeta(mark uint32) []expr.Any {
	m := binaryutil.NativeEndian.PutUint32(mark)
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m},
		&expr.Immediate{Register: 1, Data: m},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
	}
}

func ctStateNew() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func setCtMark(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	}
}

// ifname is an interface name as nftables compares it: IFNAMSIZ bytes,
// zero-padded.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// markNewNotOn marks the conntrack entry of each new connection whose
// interface (key: the input or the output one) is not dev.
func markNewNotOn(key expr.MetaKey, dev string, mark uint32) []expr.Any {
	return concat(
		[]expr.Any{
			&expr.Meta{Key: key, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(dev)},
		},
		ctStateNew(),
		setCtMark(mark),
	)
}
