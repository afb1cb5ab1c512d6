package alert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/layout"
)

// Pinger reports job starts and ends to a Healthchecks-style check: a POST
// to URL/start, then to URL/EXIT_CODE with the log's tail as the body. The
// check's own schedule and grace then catch a job that never started or
// never ended, the way the Pi's watchdog does for the server.
type Pinger struct {
	// URL is the configured ping_url, {host} and {job} not yet replaced.
	URL  string
	Host string
	// Client defaults to one whose requests time out after PingTimeout.
	Client *http.Client
	// Attempts and Backoff: a ping is tried this often, Backoff apart
	// (defaults 3 and 2s): the check counts a missed ping as a failure.
	Attempts int
	Backoff  time.Duration
}

// PingTimeout bounds one ping request.
const PingTimeout = 10 * time.Second

// maxPingBody is well under Healthchecks' 100 kB limit on a ping's body.
const maxPingBody = 64 << 10

// Start tells the check that job has started (its run time is measured
// from here).
func (p *Pinger) Start(ctx context.Context, job string) error {
	return p.send(ctx, job, "start", "")
}

// Finish tells the check how job ended: exit code 0 is success, anything
// else a failure; body (the log's tail) is kept with the ping.
func (p *Pinger) Finish(ctx context.Context, job string, exitCode int, body string) error {
	return p.send(ctx, job, strconv.Itoa(exitCode), body)
}

// signalURL appends the signal to the URL's path, before any query.
func (p *Pinger) signalURL(job, signal string) (string, error) {
	u, err := url.Parse(config.ExpandPingURL(p.URL, p.Host, layout.JobCLI(job)))
	if err != nil {
		return "", errors.New("ping_url is not a URL")
	}
	return u.JoinPath(signal).String(), nil
}

// send POSTs one signal, retrying. Errors never carry the URL: it is the
// check's secret, and errors end up in logs and mails.
func (p *Pinger) send(ctx context.Context, job, signal, body string) error {
	target, err := p.signalURL(job, signal)
	if err != nil {
		return fmt.Errorf("ping %s %s: %w", job, signal, err)
	}
	if len(body) > maxPingBody {
		body = body[len(body)-maxPingBody:]
	}
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: PingTimeout}
	}
	attempts, backoff := p.Attempts, p.Backoff
	if attempts <= 0 {
		attempts = 3
	}
	if backoff <= 0 {
		backoff = 2 * time.Second
	}
	var last error
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("ping %s %s: %w (after: %v)", job, signal, ctx.Err(), last)
			case <-time.After(backoff):
			}
		}
		h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
		if last = post(ctx, client, target, h, strings.NewReader(body)); last == nil {
			return nil
		}
	}
	return fmt.Errorf("ping %s %s: %d attempts failed, the last: %w", job, signal, attempts, last)
}

// post sends one request with headers h. Its errors never carry the
// URL; a 4xx answer is permanent (retrying a refused token or a missing
// topic changes nothing).
func post(ctx context.Context, client *http.Client, target string, h http.Header, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return errors.New("cannot make the request")
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "borgkit")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL
		}
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests:
		return permanent{fmt.Errorf("the server answered %s", resp.Status)}
	}
	return fmt.Errorf("the server answered %s", resp.Status)
}

// permanent is an answer not worth a retry.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }
