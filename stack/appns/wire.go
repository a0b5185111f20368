package appns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The parent and the setup process talk over a SOCK_SEQPACKET socketpair,
// one JSON message per packet:
//
//	parent -> child: setupRequest
//	child -> parent: reply, carrying the TUN fd (SCM_RIGHTS) on success
//	parent -> child: goMessage (run the command); closing the socket instead
//	                 tells the child to exit
//	child -> parent: reply, with Error if the command could not be started
//	parent -> child: signalMessage, any number, while the command runs.

// childFD is the socket's descriptor number in the setup process
// (exec.Cmd.ExtraFiles[0]).
const childFD = 3

// maxMessage bounds one message; the request is the largest (the command
// line) and stays far below it.
const maxMessage = 1 << 20

// setupRequest is everything the setup process needs, sent once.
type setupRequest struct {
	Device     string
	MTU        int
	Queues     int
	Addresses  []netip.Prefix
	ResolvConf string
	NSSwitch   string
	Hide       []string
	Command    []string
	User       *Credential
}

// reply is the setup process's answer. Code is the exit status the caller
// should use when exec failed (126 or 127, as a shell would).
type reply struct {
	Error   string `json:",omitempty"`
	Warning string `json:",omitempty"`
	Code    int    `json:",omitempty"`
}

var goMessage = []byte("go")

// send writes v as one message, with fds attached if any.
func send(sock int, v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(sock, b, oob, nil, 0)
}

// recv reads one message into v and returns the fds that came with it
// (close-on-exec). It returns io.EOF if the other side closed.
func recv(sock int, v any) ([]int, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	fds, ferr := parseFDs(oob[:oobn])
	if n == 0 {
		closeAll(fds)
		return nil, io.EOF
	}
	if ferr != nil {
		return nil, ferr
	}
	if v == nil {
		return fds, nil
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("malformed message: %w", err)
	}
	return fds, nil
}

func parseFDs(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
