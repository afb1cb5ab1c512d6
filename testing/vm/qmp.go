package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// qmp is a client of qemu's machine protocol on the guest's unix socket:
// one JSON object per line each way, asynchronous events interleaved with
// the replies. It is used for what the guest cannot do from inside: save
// a snapshot of the running machine, and quit.
type qmp struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialQMP(ctx context.Context, path string) (*qmp, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", path, err)
	}
	q := &qmp{conn: conn, r: bufio.NewReader(conn)}
	// The greeting, then capabilities negotiation, before any command.
	if _, err := q.readLine(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if _, err := q.execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmp) Close() error { return q.conn.Close() }

func (q *qmp) readLine(ctx context.Context) ([]byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = q.conn.SetReadDeadline(dl)
	} else {
		_ = q.conn.SetReadDeadline(time.Time{})
	}
	return q.r.ReadBytes('\n')
}

// execute runs one command and returns its "return" value.
func (q *qmp) execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		line, err := q.readLine(ctx)
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		var reply struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &reply); err != nil {
			return nil, fmt.Errorf("qmp %s: reply %q: %w", cmd, line, err)
		}
		switch {
		case reply.Event != "":
			continue
		case reply.Error != nil:
			return nil, fmt.Errorf("qmp %s: %s: %s", cmd, reply.Error.Class, reply.Error.Desc)
		default:
			return reply.Return, nil
		}
	}
}

// hmp runs a human monitor command (savevm has no simple QMP twin in
// qemu 7.2) and fails when it printed anything, which is how HMP reports
// errors.
func (q *qmp) hmp(ctx context.Context, line string) error {
	ret, err := q.execute(ctx, "human-monitor-command", map[string]string{"command-line": line})
	if err != nil {
		return err
	}
	var out string
	if err := json.Unmarshal(ret, &out); err != nil {
		return err
	}
	if out != "" {
		return errors.New(line + ": " + out)
	}
	return nil
}
