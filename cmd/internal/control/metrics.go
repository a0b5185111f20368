package control

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/stack"
)

// Sources are what the API reports. Only Flows is required; a nil source
// leaves its metrics out.
type Sources struct {
	// Flows is the live flow table and the flow totals.
	Flows *flows.Table
	// FlowLog, with --flow-log, reports its written and dropped records.
	FlowLog *flows.Log
	// Stack reports packets and drops.
	Stack *stack.Stack
	// DNS counts the queries answered in-process.
	DNS *dns.QueryCounts
	// FakeDNS reports the fake DNS table's size.
	FakeDNS interface {
		Stats() (held int, recycled uint64)
	}
	// Capture, with --pcap, reports the bytes written.
	Capture *stack.Capture
}

// collector is a prometheus.Collector that reads Sources' counters at
// scrape time, so the data path only ever does atomic adds.
type collector struct{ src *Sources }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tungate_"+name, help, labels, nil)
}

var (
	descOpened      = desc("flows_opened_total", "Flows opened, by protocol and outcome (relayed, refused, timed_out, proxy_failed with the hop index, failed, blocked).", "protocol", "outcome", "hop")
	descOpen        = desc("flows_open", "Flows open now, by protocol.", "protocol")
	descUDPSessions = desc("udp_sessions", "UDP sessions open now.")
	descBytes       = desc("bytes_total", "Payload bytes relayed, by protocol and direction (up: from the app, down: to the app).", "protocol", "direction")
	descDatagrams   = desc("udp_datagrams_total", "UDP datagrams relayed, by direction.", "direction")
	descEchoes      = desc("icmp_echo_messages_total", "ICMP echo requests (up) and replies (down) relayed.", "direction")
	descPackets     = desc("packets_total", "Packets that crossed the userspace stack, by protocol and direction (up: from the device, down: to it).", "protocol", "direction")
	descDevPackets  = desc("device_packets_total", "Packets read from (up) and written to (down) the TUN device; a segmentation-offload super-packet counts once.", "direction")
	descDevBytes    = desc("device_bytes_total", "Bytes read from (up) and written to (down) the TUN device.", "direction")
	descDial        = desc("dial_duration_seconds", "Upstream dial latency, by chain (direct, or the proxy hops).", "chain")
	descDropped     = desc("packets_dropped_total", "Packets dropped, by reason (gVisor's counters and the TUN link endpoint's own).", "reason")
	descSYNs        = desc("syns_dropped_total", "Connection requests (SYNs) dropped because too many dials were in flight.")
	descDNS         = desc("dns_queries_total", "DNS queries answered in-process, by type and outcome.", "type", "outcome")
	descFakeHeld    = desc("fakedns_names", "Names the fake DNS table holds now.")
	descFakeRecyc   = desc("fakedns_names_recycled_total", "Names the fake DNS table forgot to make room for new ones.")
	descLogWritten  = desc("flow_log_records_total", "Flow log records, by result (written, dropped: queue full or write failed).", "result")
	descPcapBytes   = desc("pcap_written_bytes_total", "Bytes written to the --pcap file.")
	descPcapActive  = desc("pcap_capturing", "1 while the --pcap capture runs, 0 once it stopped (size limit, failed write).")
)

var directions = [2]string{"up", "down"}

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpened, descOpen, descUDPSessions, descBytes, descDatagrams, descEchoes, descPackets,
		descDevPackets, descDevBytes, descDial, descDropped, descSYNs, descDNS, descFakeHeld, descFakeRecyc,
		descLogWritten, descPcapBytes, descPcapActive} {
		ch <- d
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.collectFlows(ch)
	if s := c.src.Stack; s != nil {
		p := s.Packets()
		counter(ch, descPackets, p.TCPIn, "tcp", "up")
		counter(ch, descPackets, p.TCPOut, "tcp", "down")
		counter(ch, descPackets, p.UDPIn, "udp", "up")
		counter(ch, descPackets, p.UDPOut, "udp", "down")
		counter(ch, descDevPackets, p.LinkIn, "up")
		counter(ch, descDevPackets, p.LinkOut, "down")
		counter(ch, descDevBytes, p.LinkBytesIn, "up")
		counter(ch, descDevBytes, p.LinkBytesOut, "down")
		for _, d := range s.Drops() {
			counter(ch, descDropped, d.Packets, d.Reason)
		}
		counter(ch, descSYNs, s.Counters().SYNsDropped)
	}
	if q := c.src.DNS; q != nil {
		for t, typ := range dns.QueryTypes {
			for o, outcome := range dns.QueryOutcomes {
				if n := q.Count(t, o); n > 0 {
					counter(ch, descDNS, n, typ, outcome)
				}
			}
		}
	}
	if f := c.src.FakeDNS; f != nil {
		held, recycled := f.Stats()
		gauge(ch, descFakeHeld, float64(held))
		counter(ch, descFakeRecyc, recycled)
	}
	if l := c.src.FlowLog; l != nil {
		counter(ch, descLogWritten, l.Written(), "written")
		counter(ch, descLogWritten, l.Dropped(), "dropped")
	}
	if p := c.src.Capture; p != nil {
		counter(ch, descPcapBytes, uint64(p.Written()))
		active := 1.0
		if p.Stopped() {
			active = 0
		}
		gauge(ch, descPcapActive, active)
	}
}

func (c collector) collectFlows(ch chan<- prometheus.Metric) {
	t := c.src.Flows.Totals()
	for _, p := range flows.Protocols {
		proto := p.String()
		for _, o := range flows.Outcomes {
			if o == flows.ProxyFailed {
				for hop := 1; hop <= flows.MaxHop; hop++ {
					if n := t.ProxyHops[p][hop]; n > 0 {
						counter(ch, descOpened, n, proto, o.String(), flows.HopLabel(hop))
					}
				}
				continue
			}
			counter(ch, descOpened, t.Opened[p][o], proto, o.String(), "")
		}
		gauge(ch, descOpen, float64(t.Open[p]), proto)
		for d, dir := range directions {
			counter(ch, descBytes, t.Bytes[p][d], proto, dir)
		}
	}
	gauge(ch, descUDPSessions, float64(t.Open[flows.UDP]))
	for d, dir := range directions {
		counter(ch, descDatagrams, t.Packets[flows.UDP][d], dir)
		counter(ch, descEchoes, t.Packets[flows.ICMP][d], dir)
	}
	for chain, h := range t.DialLatency {
		buckets := make(map[float64]uint64, len(flows.DialBuckets))
		for i, b := range flows.DialBuckets {
			buckets[b] = h.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(descDial, h.Count, h.Sum, buckets, chain)
	}
}
