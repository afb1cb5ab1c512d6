// Package link emulates the offsite link for tests and the bench: a
// one-way delay and a rate limit per direction, as a VPN to a home uplink
// has (30–80 ms round trip, 10–50 Mbit/s), on a machine whose kernel has
// no netem qdisc.
//
// Two forms share one delay line (Line):
//
//   - Join puts a TAP device into each of two network namespaces and
//     forwards every Ethernet frame between them through this process.
//     Everything on the wire is delayed and paced, the TCP handshake,
//     slow start and ACK clocking included, so a bulk copy and a login
//     cost what they would cost over the real link. It needs root.
//   - Proxy is a TCP forwarder on 127.0.0.1 that delays and paces the
//     byte stream. It needs nothing, so `go test -bench` can put latency
//     under an SSH host anywhere; it does not delay the TCP handshake
//     and its pacing is the proxy's, not TCP's.
//
// Both count the link's turns: how often the direction of the payload
// changed, which for request and answer is two per sequential round trip.
package link
