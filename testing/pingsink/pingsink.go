// Package pingsink is a Healthchecks-style check for tests: a real HTTP
// listener on 127.0.0.1 that records every ping borgkit's jobs send.
package pingsink

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Ping is one request the check received.
type Ping struct {
	Method string
	// URI is the path and query ("/KEY/john-ai-nightly/0?create=1").
	URI  string
	Body string
}

// String is "METHOD URI BODY", for comparing lists in one line each.
func (p Ping) String() string { return p.Method + " " + p.URI + " " + p.Body }

// Sink is the running check.
type Sink struct {
	// URL is the listener's base ("http://127.0.0.1:PORT").
	URL string

	srv   *httptest.Server
	mu    sync.Mutex
	pings []Ping
	fail  int
}

// Start listens on 127.0.0.1 until the test ends. The first fail pings are
// answered 503, as a check under maintenance would.
func Start(t testing.TB, fail int) *Sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(ln, fail)
	t.Cleanup(s.Close)
	return s
}

// Serve answers pings on ln (a lab's listener inside a network namespace)
// until Close.
func Serve(ln net.Listener, fail int) *Sink {
	s := &Sink{fail: fail}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.pings = append(s.pings, Ping{Method: r.Method, URI: r.URL.RequestURI(), Body: string(body)})
		if len(s.pings) <= s.fail {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "OK")
	}))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// Close stops listening: later pings are refused.
func (s *Sink) Close() { s.srv.Close() }

// Pings is every ping so far, in order.
func (s *Sink) Pings() []Ping {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ping(nil), s.pings...)
}
