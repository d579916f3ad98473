package harness

import (
	"fmt"
	"net"
	"time"
)

// DialCarbon opens a TCP connection to the carbon listener.
func (p *Process) DialCarbon() net.Conn {
	p.tb.Helper()
	addr := p.CarbonTCPAddr()
	if addr == "" {
		p.tb.Fatalf("%s: the binary has no -graphite.carbon.tcp-listen-address flag", p.opts.Name)
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		p.tb.Fatalf("connecting to carbon at %s: %v", addr, err)
	}
	return c
}

// SendCarbon writes lines (each followed by a newline) on one new carbon
// TCP connection and closes it.
func (p *Process) SendCarbon(lines ...string) {
	p.tb.Helper()
	c := p.DialCarbon()
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for _, l := range lines {
		if _, err := fmt.Fprintf(c, "%s\n", l); err != nil {
			p.tb.Fatalf("writing carbon lines: %v", err)
		}
	}
}
