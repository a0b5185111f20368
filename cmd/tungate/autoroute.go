package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/tungate/tungate/stack/hostroute"
)

// autoRouting is the routing --auto-route installed; nil without it.
type autoRouting struct {
	routing  *hostroute.Routing
	failOpen bool
	log      *slog.Logger
}

// installAutoRoute routes the namespace into device dev, if --auto-route.
func installAutoRoute(cfg *gatewayConfig, dev string, log *slog.Logger) (*autoRouting, error) {
	a := &cfg.autoRoute
	if !a.on {
		return nil, nil
	}
	mark := cfg.fwmark
	if mark == 0 {
		// --interface without --fwmark: tungate's sockets are bound, not
		// marked, but replies of inbound connections still need a mark.
		mark = hostroute.DefaultMark
	}
	began := time.Now()
	r, err := hostroute.Install(hostroute.Config{
		Device:         dev,
		Table:          a.table,
		Priority:       a.priority,
		Mark:           mark,
		BoundInterface: cfg.iface,
		Exclude:        a.exclude.values,
		ExcludeUIDs:    a.excludeUIDs,
		IncludeUIDs:    a.includeUIDs,
		RouteLAN:       a.routeLAN,
		NoDNSHijack:    a.noDNSHijack,
		FailOpen:       a.failOpen,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("auto-route installed", "table", a.table, "rule_priority", a.priority, "fwmark", fmt.Sprintf("%#x", mark), "fail_open", a.failOpen, "took", time.Since(began).Round(time.Microsecond))
	return &autoRouting{routing: r, failOpen: a.failOpen, log: log}, nil
}

// stop removes the routing after a clean stop. After a failure (the device
// deleted under tungate) it leaves it in place unless --fail-open, so that
// captured traffic keeps failing instead of going around tungate; `tungate
// cleanup` removes it then.
func (a *autoRouting) stop(failed bool) error {
	if a == nil {
		return nil
	}
	if failed && !a.failOpen {
		a.log.Warn("leaving the auto-route rules in place, so captured traffic fails closed; run tungate cleanup to remove them")
		return nil
	}
	return a.routing.Remove()
}
