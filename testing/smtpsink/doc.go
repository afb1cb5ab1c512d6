// Package smtpsink is a small SMTP server for tests: it accepts mail on
// 127.0.0.1 (as msmtp sends it, no TLS, no AUTH) and keeps every message parsed.
package smtpsink
