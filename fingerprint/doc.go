// Package fingerprint grabs banners from open ports and identifies the
// service, product and version behind them, whether it answers without
// credentials, and what its TLS certificate says.
//
// A Grabber speaks one protocol on a connection the Pool dialled (one
// subpackage per protocol; fingerprint/registry lists them, built in code,
// no init() registration). Every grab produces one Result envelope: target,
// module, a Status from a closed set (success, no-banner, timeout, refused,
// reset, tls-error, protocol-error), time, error, and protocol-typed fields.
//
// The Pool identifies a service by what answers, not by the port number,
// within one deadline per target (PoolConfig.Timeout) that covers every
// dial, read, TLS handshake and follow-up probe:
//
//  1. on ports where TLS comes first (443, 465, 993, 995, 8443, …), a TLS
//     handshake, then the port's grabbers and HTTP inside TLS;
//  2. the grabbers whose Ports claim the port;
//  3. what the server says unprompted (PoolConfig.Greeting), offered to
//     every Greeter (SSH, MySQL, SMTP, POP3, IMAP, FTP, VNC, Telnet), which
//     then reads it again from a replaying connection;
//  4. a TLS ClientHello on any port, and the protocol inside TLS;
//  5. the remaining client-first grabbers (HTTP, Redis, memcached,
//     PostgreSQL, MongoDB, RDP) as generic probes, each bounded to a
//     quarter of the timeout so one that waits for more cannot starve the
//     rest;
//  6. the unprompted bytes, or what the fallback grabber prompts, as a
//     generic banner.
//
// Every attempt gets its own connection, because a failed probe leaves the
// server's protocol state unknown. A refused dial ends the grab at once.
// A Batch bounds the work: PoolConfig.Workers grabs at once, at most
// PerAddr against one address, new connections at most Rate per second;
// Submit never blocks, so a scan's receiver can hand it every hit.
package fingerprint
