//go:build !amd64 && !arm64

package lab

// sysSetns is unknown here: inNetNS fails with ENOSYS and the lab cannot
// start (its SMTP listener and sshd probes need it).
const sysSetns = -1
