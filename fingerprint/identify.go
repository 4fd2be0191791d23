package fingerprint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// grab identifies the service at t within one deadline, by what answers
// rather than by the port number:
//
//  1. on ports where TLS comes first (443, 993, …), TLS, then the protocol
//     inside it;
//  2. the grabbers that claim the port;
//  3. whatever the server says unprompted, offered to every Greeter;
//  4. TLS, on any port that answers a ClientHello, then the protocol
//     inside it;
//  5. the remaining client-first grabbers as cheap generic probes;
//  6. the fallback: the server's unprompted bytes as a generic banner.
//
// Each attempt gets its own connection. A refused, timed-out or locally
// failed dial ends the grab: nothing else would get further. A local
// failure (IsLocal) stays StatusLocalError even when the deadline passed.
func (p *Pool) grab(ctx context.Context, t Target, lim *rate.Limiter) Result {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	g := &attempt{p: p, t: t, lim: lim, tried: map[string]bool{}}
	res, err := g.identify(ctx)
	res.Target, res.Time, res.Connected = t.AddrPort, time.Now().UTC(), g.connected
	switch {
	case err == nil && res.Service != "":
		res.Status = StatusSuccess
	case err == nil:
		res.Status, res.Error = StatusNoBanner, "nothing identifiable came back"
	default:
		res.Status, res.Error = StatusOf(err), err.Error()
		if expired(ctx) && res.Status != StatusLocalError {
			res.Status = StatusTimeout
			if g.connected {
				res.Error = fmt.Sprintf("nothing identified within %s (connected; last error: %v)", p.cfg.Timeout, err)
			}
		}
	}
	if res.Status == StatusSuccess {
		res.Error = ""
	}
	return res
}

type attempt struct {
	p      *Pool
	t      Target
	lim    *rate.Limiter
	tried  map[string]bool // grabbers tried in the clear
	banner []byte          // what the server said unprompted
	tls    bool            // a TLS handshake was tried
	// connected is set once any connection was established
	connected bool
}

// errStop ends identification: the target cannot be reached any more.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }
func (e errStop) Unwrap() error { return e.err }

func (a *attempt) dial(ctx context.Context) (net.Conn, error) {
	if a.lim != nil {
		if err := a.lim.Wait(ctx); err != nil {
			return nil, errStop{fmt.Errorf("dial %s: %w", a.t.AddrPort, context.DeadlineExceeded)}
		}
	}
	c, err := a.p.cfg.Dial(ctx, "tcp", a.t.AddrPort.String())
	if err != nil {
		return nil, errStop{fmt.Errorf("dial %s: %w", a.t.AddrPort, err)}
	}
	a.connected = true
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// a cancelled ctx (a hard stop) interrupts a blocked read at once,
	// not at the deadline
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return &ctxConn{Conn: c, stop: stop}, nil
}

// ctxConn is a dialled connection tied to its grab's context.
type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// run tries grabber g on a new connection (through TLS when overTLS).
// done reports whether identification is over: a recognised service, or
// an error that ends the grab.
func (a *attempt) run(ctx context.Context, g Grabber, overTLS bool) (Result, error, bool) {
	if !overTLS {
		a.tried[g.Name()] = true
	}
	if ctx.Err() != nil {
		return Result{}, ctx.Err(), true
	}
	conn, err := a.dial(ctx)
	if err != nil {
		return Result{}, err, true
	}
	defer conn.Close()
	var info *TLSInfo
	if overTLS {
		// offer only what the grabber speaks: HTTP/1.1 for HTTP (not h2),
		// nothing for the rest (some mail servers refuse an HTTP ALPN)
		var alpn []string
		if g.Name() == "http" {
			alpn = []string{"http/1.1"}
		}
		tc, ti, err := HandshakeALPN(ctx, conn, a.t.Hostname, alpn)
		if err != nil {
			return Result{}, err, false
		}
		conn, info = tc, ti
	}
	return a.grabOn(ctx, g, conn, info)
}

// grabOn runs g on an open connection (inside TLS when info is set).
func (a *attempt) grabOn(ctx context.Context, g Grabber, conn net.Conn, info *TLSInfo) (Result, error, bool) {
	res, err := g.Grab(ctx, conn, a.t)
	if res.Module == "" {
		res.Module = g.Name()
	}
	if info != nil && res.TLS == nil {
		res.TLS = info
	}
	if res.Service != "" {
		return res, err, true // recognised, maybe partly
	}
	if ctx.Err() != nil {
		return Result{}, ctx.Err(), true
	}
	return Result{}, err, false
}

// identify runs the steps; when the deadline ends them before anything was
// recognised, what the server said unprompted is still kept as a banner.
func (a *attempt) identify(ctx context.Context) (Result, error) {
	res, err := a.steps(ctx)
	if err != nil && res.Service == "" && expired(ctx) && len(a.banner) > 0 {
		return Result{Service: "banner", Module: "banner", Banner: a.banner}, nil
	}
	return res, err
}

func (a *attempt) steps(ctx context.Context) (Result, error) {
	port := a.t.AddrPort.Port()
	byPort := func(g Grabber) bool { return slices.Contains(g.Ports(), port) }
	var last error
	note := func(err error) {
		if err != nil {
			last = err
		}
	}
	// 1. TLS first where the port says so
	if slices.Contains(tlsPorts, port) {
		if res, err, done := a.viaTLS(ctx, byPort); done {
			return res, err
		} else {
			note(err)
		}
	}
	// 2. the port's own grabbers
	for _, g := range a.p.cfg.Grabbers {
		if !byPort(g) || a.tried[g.Name()] {
			continue
		}
		res, err, done := a.run(ctx, g, false)
		if done {
			return res, err
		}
		note(err)
	}
	// 3. what the server says unprompted
	if res, err, done := a.greeting(ctx); done {
		return res, err
	} else {
		note(err)
	}
	// 4. TLS on any port
	if !a.tls {
		if res, err, done := a.viaTLS(ctx, byPort); done {
			return res, err
		} else {
			note(err)
		}
	}
	// 5. client-first probes not tried yet, each within its share of the
	// deadline: a server that waits for more after a foreign probe must
	// not use up the time of the probes after it
	for _, g := range a.p.cfg.Grabbers {
		if _, greets := g.(Greeter); greets || a.tried[g.Name()] {
			continue
		}
		pctx, cancel := a.probeContext(ctx)
		res, err, done := a.run(pctx, g, false)
		cancel()
		if res.Service != "" {
			return res, err
		}
		if expired(ctx) {
			break // out of time: keep what the server said, if anything
		}
		if done && errors.As(err, new(errStop)) {
			return res, err
		}
		note(err)
	}
	// 6. a generic banner: what the server said unprompted, or what the
	// fallback grabber can prompt out of it
	if len(a.banner) > 0 {
		return Result{Service: "banner", Module: "banner", Banner: a.banner}, nil
	}
	if fb := a.p.cfg.Fallback; fb != nil && ctx.Err() == nil {
		res, err, done := a.run(ctx, fb, false)
		if done {
			return res, err
		}
		note(err)
	}
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if last != nil && !errors.Is(last, ErrNotRecognised) {
		return Result{}, last
	}
	return Result{}, nil
}

// greeting reads what the server sends unprompted and offers it to every
// Greeter; the one that claims it gets the connection with the bytes
// replayed.
func (a *attempt) greeting(ctx context.Context) (Result, error, bool) {
	conn, err := a.dial(ctx)
	if err != nil {
		return Result{}, err, true
	}
	defer conn.Close()
	wctx, cancel := context.WithTimeout(ctx, a.p.cfg.Greeting)
	buf := make([]byte, min(a.t.Limit(), 4096))
	b, err := ReadSome(wctx, conn, buf, 200*time.Millisecond)
	cancel()
	conn.SetReadDeadline(time.Time{})
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if len(b) == 0 {
		if err != nil && StatusOf(err) == StatusReset {
			return Result{}, err, false
		}
		return Result{}, nil, false
	}
	a.banner = b
	for _, g := range a.p.cfg.Grabbers {
		gr, ok := g.(Greeter)
		if !ok || !gr.Greets(b) {
			continue
		}
		a.tried[g.Name()] = true
		res, err := g.Grab(ctx, &replayConn{Conn: conn, pending: b}, a.t)
		if res.Module == "" {
			res.Module = g.Name()
		}
		if res.Service != "" {
			return res, err, true
		}
		return Result{}, err, false
	}
	return Result{}, nil, false
}

// viaTLS handshakes and runs the port's grabbers, then HTTP, inside TLS; a
// server that speaks TLS but nothing recognisable inside is service "tls".
func (a *attempt) viaTLS(ctx context.Context, byPort func(Grabber) bool) (Result, error, bool) {
	a.tls = true
	var inner []Grabber
	for _, g := range a.p.cfg.Grabbers {
		if _, greets := g.(Greeter); byPort(g) || (!greets && g.Name() == "http") {
			inner = append(inner, g)
		}
	}
	// offer HTTP in ALPN only when HTTP is what will be spoken first: some
	// mail servers end a handshake that offers it
	var alpn []string
	if len(inner) > 0 && inner[0].Name() == "http" {
		alpn = []string{"h2", "http/1.1"}
	}
	conn, err := a.dial(ctx)
	if err != nil {
		return Result{}, err, true
	}
	defer conn.Close()
	// a server that does not speak TLS may wait for more of what it took
	// for a command: the handshake gets a probe's share of the deadline
	hctx, cancel := a.probeContext(ctx)
	tc, info, err := HandshakeALPN(hctx, conn, a.t.Hostname, alpn)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err(), true
		}
		return Result{}, err, false
	}
	for i, g := range inner {
		var res Result
		var done bool
		if i == 0 && info.ALPN != "h2" {
			// the first grabber speaks on the probe's own session: one
			// handshake, not two (reach speaks HTTP/1.1, not h2)
			res, err, done = a.grabOn(ctx, g, tc, info)
		} else {
			res, err, done = a.run(ctx, g, true)
		}
		if done {
			if res.Service != "" && res.TLS == nil {
				res.TLS = info
			}
			if res.Service == "" {
				// the dial itself failed after a handshake worked: keep TLS
				return Result{Service: "tls", Module: "tls", TLS: info}, err, true
			}
			return res, err, true
		}
	}
	return Result{Service: "tls", Module: "tls", TLS: info}, nil, true
}

// expired reports whether ctx is done or its deadline has passed (its
// timer may fire a moment after a dial already failed on the deadline).
func expired(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(dl))
}

// probeContext bounds one generic probe to a quarter of the pool's
// timeout, within ctx's deadline.
func (a *attempt) probeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.p.cfg.Timeout/4)
}

// replayConn returns pending before reading from the connection: the
// greeting the pool read on a Greeter's behalf.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
