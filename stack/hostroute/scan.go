package hostroute

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// leftovers is what a table and priority block hold before Install.
type leftovers struct {
	// rules and routes carry Protocol: an earlier instance's.
	rules  []netlink.Rule
	routes []netlink.Route
	nft    bool
	// foreign, if not empty, names the first entry that is not tungate's.
	foreign string
}

func (l *leftovers) empty() bool { return len(l.rules) == 0 && len(l.routes) == 0 && !l.nft }

// scan lists tungate's entries and finds anyone else's: a rule is tungate's
// if it carries Protocol and sits in the priority block or points at the
// table; a route, if it carries Protocol and is in the table. A rule of
// another protocol in the block or pointing at the table, or a route of
// another in the table, is foreign.
func scan(nl *netlink.Handle, table, priority int) (*leftovers, error) {
	l := &leftovers{}
	for _, fam := range families {
		rules, err := nl.RuleList(fam)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			if isIPv6(fam) && ipv6Off(err) {
				continue
			}
			return nil, fmt.Errorf("auto-route: list %s rules: %w", familyName(fam), err)
		}
		for _, r := range rules {
			inBlock := r.Priority >= priority && r.Priority < priority+PriorityBlock
			if !inBlock && r.Table != table {
				continue
			}
			if r.Protocol != Protocol {
				if l.foreign == "" {
					l.foreign = describeRule(&r)
				}
				continue
			}
			l.rules = append(l.rules, r)
		}
		routes, err := nl.RouteListFiltered(fam, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			if isIPv6(fam) && ipv6Off(err) {
				continue
			}
			return nil, fmt.Errorf("auto-route: list %s routes of table %d: %w", familyName(fam), table, err)
		}
		for _, r := range routes {
			if r.Protocol != Protocol {
				if l.foreign == "" {
					l.foreign = describeRoute(&r)
				}
				continue
			}
			l.routes = append(l.routes, r)
		}
	}
	nft, err := nfTableExists()
	if err != nil {
		return nil, fmt.Errorf("auto-route: %w", err)
	}
	l.nft = nft
	return l, nil
}

// remove deletes the leftovers, rules first, and describes each one deleted.
func (l *leftovers) remove(nl *netlink.Handle) ([]string, error) {
	var done []string
	var errs []error
	for i := range l.rules {
		r := &l.rules[i]
		if err := nl.RuleDel(r); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", describeRule(r), permHint(err)))
			continue
		}
		done = append(done, describeRule(r))
	}
	for i := range l.routes {
		r := &l.routes[i]
		if err := nl.RouteDel(r); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", describeRoute(r), permHint(err)))
			continue
		}
		done = append(done, describeRoute(r))
	}
	if l.nft {
		ok, err := deleteNFTable()
		if err != nil {
			errs = append(errs, err)
		} else if ok {
			done = append(done, "nftables table inet "+NFTable)
		}
	}
	return done, errors.Join(errs...)
}

// Cleanup removes what an instance that did not stop cleanly left in table
// and the priority block from priority, and returns a line for each entry it
// removed (none if nothing was left). Entries of anyone else are left alone.
// While a live instance holds the namespace it removes nothing and returns
// a *RunningError.
func Cleanup(table, priority int) ([]string, error) {
	lock, err := acquireLock()
	if err != nil {
		return nil, err
	}
	defer lock.release()
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("cleanup: open netlink: %w", err)
	}
	defer nl.Close()
	l, err := scan(nl, table, priority)
	if err != nil {
		return nil, err
	}
	done, err := l.remove(nl)
	if err != nil {
		return done, fmt.Errorf("cleanup: %w", err)
	}
	return done, nil
}
