// Package notifysink is the push channels' far ends for tests: an ntfy
// server's publishing side, as its documentation describes the HTTP form
// (POST or PUT to /TOPIC, the message as the body, Title, Priority and
// Tags headers or their aliases, RFC 2047 encoded values, bearer tokens),
// and a webhook receiver. Both are real HTTP listeners on 127.0.0.1 and
// refuse what the real ones would.
package notifysink

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// NtfyMessage is one message the ntfy sink accepted.
type NtfyMessage struct {
	Topic    string
	Title    string
	Priority int // 1..5, 3 when the publisher set none
	Tags     []string
	Message  string
	// Auth is the Authorization header as received.
	Auth string
}

// Ntfy is a running ntfy publish endpoint.
type Ntfy struct {
	// URL is the server's base ("http://127.0.0.1:PORT"); a topic's URL
	// is URL + "/" + TOPIC.
	URL string

	srv   *httptest.Server
	token string
	mu    sync.Mutex
	msgs  []NtfyMessage
}

// ntfy's documented limits: topic names, and the message size above which
// a message is no longer a message.
var topicRE = regexp.MustCompile(`^[-_A-Za-z0-9]{1,64}$`)

const maxMessage = 4096

// StartNtfy listens on 127.0.0.1 until the test ends. With token set,
// publishing needs "Authorization: Bearer TOKEN", as a protected topic does.
func StartNtfy(t testing.TB, token string) *Ntfy {
	n := &Ntfy{token: token}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	n.URL = n.srv.URL
	t.Cleanup(n.srv.Close)
	return n
}

// Close stops listening: later messages are refused at connect.
func (n *Ntfy) Close() { n.srv.Close() }

// Messages is every message accepted so far.
func (n *Ntfy) Messages() []NtfyMessage {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]NtfyMessage(nil), n.msgs...)
}

// header is the first of a field's names ntfy accepts that is set,
// RFC 2047 decoded.
func header(r *http.Request, names ...string) (string, error) {
	for _, name := range names {
		if v := r.Header.Get(name); v != "" {
			return new(mime.WordDecoder).DecodeHeader(v)
		}
	}
	return "", nil
}

var priorities = map[string]int{"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}

func (n *Ntfy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		http.Error(w, `{"code":40501,"error":"method not allowed"}`, http.StatusMethodNotAllowed)
		return
	}
	topic := strings.TrimPrefix(r.URL.Path, "/")
	if !topicRE.MatchString(topic) {
		http.Error(w, `{"code":40010,"error":"invalid topic"}`, http.StatusBadRequest)
		return
	}
	auth := r.Header.Get("Authorization")
	if n.token != "" && auth != "Bearer "+n.token {
		http.Error(w, `{"code":40101,"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMessage+1))
	if err != nil || len(body) > maxMessage {
		http.Error(w, `{"code":41301,"error":"message too large"}`, http.StatusRequestEntityTooLarge)
		return
	}
	m := NtfyMessage{Topic: topic, Message: string(body), Priority: 3, Auth: auth}
	if m.Title, err = header(r, "X-Title", "Title", "ti", "t"); err != nil {
		http.Error(w, `{"code":40000,"error":"bad title"}`, http.StatusBadRequest)
		return
	}
	p, err := header(r, "X-Priority", "Priority", "prio", "p")
	if err == nil && p != "" {
		if v, ok := priorities[strings.ToLower(p)]; ok {
			m.Priority = v
		} else if v, perr := strconv.Atoi(p); perr == nil && v >= 1 && v <= 5 {
			m.Priority = v
		} else {
			err = fmt.Errorf("priority %q", p)
		}
	}
	if err != nil {
		http.Error(w, `{"code":40007,"error":"invalid priority"}`, http.StatusBadRequest)
		return
	}
	tags, err := header(r, "X-Tags", "Tags", "tag", "ta")
	if err != nil {
		http.Error(w, `{"code":40000,"error":"bad tags"}`, http.StatusBadRequest)
		return
	}
	for _, t := range strings.Split(tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			m.Tags = append(m.Tags, t)
		}
	}
	n.mu.Lock()
	n.msgs = append(n.msgs, m)
	id := len(n.msgs)
	n.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": fmt.Sprintf("msg%d", id), "time": time.Now().Unix(),
		"event": "message", "topic": topic, "title": m.Title, "message": m.Message, "priority": m.Priority, "tags": m.Tags})
}

// Hook is a running webhook receiver.
type Hook struct {
	// URL is where to POST ("http://127.0.0.1:PORT/hook/SECRET").
	URL string

	srv   *httptest.Server
	token string
	fail  int
	mu    sync.Mutex
	got   []map[string]any
	auths []string
}

// StartHook listens on 127.0.0.1 until the test ends. It takes JSON
// objects POSTed to its URL; with token set only with that bearer token.
// The first fail requests are answered 503.
func StartHook(t testing.TB, token string, fail int) *Hook {
	h := &Hook{token: token, fail: fail}
	mux := http.NewServeMux()
	mux.HandleFunc("/hook/secret-path", h.serve)
	h.srv = httptest.NewServer(mux)
	h.URL = h.srv.URL + "/hook/secret-path"
	t.Cleanup(h.srv.Close)
	return h
}

func (h *Hook) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail > 0 {
		h.fail--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		http.Error(w, "want application/json", http.StatusUnsupportedMediaType)
		return
	}
	if h.token != "" && r.Header.Get("Authorization") != "Bearer "+h.token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var v map[string]any
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&v); err != nil || dec.More() {
		http.Error(w, "want one JSON object", http.StatusBadRequest)
		return
	}
	h.got = append(h.got, v)
	h.auths = append(h.auths, r.Header.Get("Authorization"))
	w.WriteHeader(http.StatusNoContent)
}

// Bodies is every JSON object received so far.
func (h *Hook) Bodies() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.got...)
}
