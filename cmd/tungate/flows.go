package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/flows"
)

const flowsUsage = `Usage: tungate flows [--control PATH] [--json] [--watch]
       tungate flows [--control PATH] --close ID

Print the live flow table of the running tungate (the one whose control
socket is PATH; without --control, the only one running as this user).

Flags:
`

// flowsOptions is what the flags of `tungate flows` say.
type flowsOptions struct {
	control string
	json    bool
	watch   bool
	closeID uint64
	help    bool
}

// newFlowsFlags is the flag set of `tungate flows`; --help and the
// completions read it too.
func newFlowsFlags(o *flowsOptions) *pflag.FlagSet {
	fs := pflag.NewFlagSet("tungate flows", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.control, "control", "", "the instance's control socket `PATH`")
	fs.BoolVar(&o.json, "json", false, "print the table as JSON (an array of flows)")
	fs.BoolVar(&o.watch, "watch", false, "redraw every second until interrupted, like top")
	fs.Uint64Var(&o.closeID, "close", 0, "end flow `ID` (TCP: a reset to both sides) and exit")
	fs.BoolVarP(&o.help, "help", "h", false, "show this help")
	return fs
}

// flowsCommand implements `tungate flows`.
func flowsCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o flowsOptions
	fs := newFlowsFlags(&o)
	if err := fs.Parse(args); err != nil {
		return flagParseError(fmt.Errorf("flows: %w", err))
	}
	if o.help {
		fmt.Fprintf(stdout, "%s%s", flowsUsage, fs.FlagUsages())
		return nil
	}
	if fs.NArg() > 0 {
		return usageErrorf("flows: unexpected argument %q", fs.Arg(0))
	}
	if fs.Changed("close") && o.watch {
		return usageErrorf("flows: --close ends one flow; it does not go with --watch")
	}
	sock := o.control
	if sock == "" {
		var err error
		if sock, err = findInstance(); err != nil {
			return err
		}
	}
	c := newControlClient(sock)
	if fs.Changed("close") {
		return c.closeFlow(ctx, o.closeID, stdout)
	}
	for {
		body, err := c.get(ctx, "/flows")
		if err != nil {
			return err
		}
		if o.watch && !o.json {
			io.WriteString(stdout, "\x1b[H\x1b[2J") // home, clear: redraw in place
		}
		if err := printFlows(stdout, body, o.json); err != nil {
			return err
		}
		if !o.watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// controlDir is where instances put their default control sockets.
func controlDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/run/tungate", nil
	}
	xdg := os.Getenv("XDG_RUNTIME_DIR")
	if xdg == "" {
		return "", errors.New("XDG_RUNTIME_DIR is not set, so there is no default control socket; give --control PATH")
	}
	return filepath.Join(xdg, "tungate"), nil
}

// findInstance returns the control socket of the one tungate running, as
// found in controlDir (sockets nobody answers on are left of dead ones).
func findInstance() (string, error) {
	dir, err := controlDir()
	if err != nil {
		return "", err
	}
	return findInstanceIn(dir)
}

// findInstanceIn is findInstance in dir. The directory is shared by the
// instances of every network namespace, and each answers only its own
// (the others close the connection at once): those are left out.
func findInstanceIn(dir string) (string, error) {
	socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	var live, elsewhere []string
	for _, s := range socks {
		switch probeControl(s) {
		case controlHere:
			live = append(live, s)
		case controlElsewhere:
			elsewhere = append(elsewhere, s)
		}
	}
	switch len(live) {
	case 0:
		if len(elsewhere) > 0 {
			return "", fmt.Errorf("flows: no tungate of this network namespace has a control socket in %s; %s %s",
				dir, strings.Join(elsewhere, ", "), otherNetNSHint)
		}
		return "", fmt.Errorf("flows: no running tungate has a control socket in %s (give --control PATH)", dir)
	case 1:
		return live[0], nil
	}
	return "", usageErrorf("flows: %d tungate instances are running; pick one with --control PATH: %s", len(live), strings.Join(live, ", "))
}

// otherNetNSHint explains a control socket that closes every connection.
const otherNetNSHint = "belongs to a tungate of another network namespace, which answers only processes in its own: run tungate flows there (ip netns exec NAME tungate flows)"

// What probeControl found at a socket.
const (
	controlDead      = iota // nobody listens (left by an instance that died)
	controlHere             // an instance that answers us
	controlElsewhere        // an instance that closed the connection at once
)

// probeControl tells whether the instance at the control socket path
// would answer this process: one in another network namespace closes the
// connection as soon as it accepts it, while one that answers waits for
// the request.
func probeControl(path string) int {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return controlDead
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return controlElsewhere
	}
	return controlHere
}

// controlClient talks HTTP to an instance's control socket.
type controlClient struct {
	path string
	http *http.Client
}

func newControlClient(path string) *controlClient {
	return &controlClient{path: path, http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}}
}

func (c *controlClient) do(ctx context.Context, method, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://tungate"+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.http.Do(req)
	// The instance closes at once: the request meets EOF or a reset, or,
	// when the close came before the write, a broken pipe.
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return 0, nil, fmt.Errorf("flows: control socket %s %s: %w", c.path, otherNetNSHint, err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("flows: control socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("flows: control socket %s: %w", c.path, err)
	}
	return resp.StatusCode, body, nil
}

func (c *controlClient) get(ctx context.Context, path string) ([]byte, error) {
	code, body, err := c.do(ctx, http.MethodGet, path)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("flows: %s: %s", path, strings.TrimSpace(string(body)))
	}
	return body, err
}

func (c *controlClient) closeFlow(ctx context.Context, id uint64, stdout io.Writer) error {
	code, body, err := c.do(ctx, http.MethodPost, "/flows/"+strconv.FormatUint(id, 10)+"/close")
	switch {
	case err != nil:
		return err
	case code == http.StatusNoContent:
		fmt.Fprintf(stdout, "flow %d closed\n", id)
		return nil
	}
	return fmt.Errorf("flows: close %d: %s", id, strings.TrimSpace(string(body)))
}

// printFlows prints the /flows answer body as a table, or as it is.
func printFlows(w io.Writer, body []byte, asJSON bool) error {
	var infos []flows.Info
	if err := json.Unmarshal(body, &infos); err != nil {
		return fmt.Errorf("flows: the instance answered something that is not a flow table: %w", err)
	}
	if asJSON {
		var out bytes.Buffer
		json.Compact(&out, body)
		out.WriteByte('\n')
		_, err := w.Write(out.Bytes())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROTO\tSOURCE\tDESTINATION\tNAME\tROUTE\tSTATE\tAGE\tUP\tDOWN\tRATE UP\tRATE DOWN")
	for _, f := range infos {
		name := f.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s/s\t%s/s\n", f.ID, f.Protocol, f.Src, f.Dst, name,
			f.Route, f.State, age(f.Age), bytesText(float64(f.BytesUp)), bytesText(float64(f.BytesDown)),
			bytesText(f.RateUp), bytesText(f.RateDown))
	}
	return tw.Flush()
}

// age prints seconds as 45s, 3m05s or 2h07m.
func age(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// bytesText prints a byte count with a binary unit: 512B, 1.5KiB, 20MiB.
func bytesText(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 || n >= 100 {
		return fmt.Sprintf("%.0f%s", n, units[i])
	}
	return fmt.Sprintf("%.1f%s", n, units[i])
}
