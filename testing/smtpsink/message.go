package smtpsink

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// Message is one message as the sink received it.
type Message struct {
	// From and To are the envelope (MAIL FROM, RCPT TO), which may differ
	// from the headers: Bcc recipients appear only here.
	From string
	To   []string
	// Data is the message after dot-unstuffing, with CRLF line ends.
	Data []byte

	// The rest is Data parsed; ParseErr says why some of it is missing.
	Header mail.Header
	// Subject is the Subject header with RFC 2047 words decoded.
	Subject string
	// Body is the body with its Content-Transfer-Encoding undone; for a
	// multipart message it is the raw MIME body and Parts holds the content.
	Body string
	// Parts are the leaf parts of a multipart message in order (nested
	// multiparts flattened), each transfer-decoded.
	Parts    []Part
	ParseErr error
}

// Part is one leaf of a multipart message.
type Part struct {
	Header textproto.MIMEHeader
	// MediaType is the Content-Type without parameters, lower case
	// ("text/plain"); Charset is its charset parameter, if any.
	MediaType string
	Charset   string
	Body      string
}

// Part returns the first leaf part of the given media type ("text/html").
func (m Message) Part(mediaType string) (Part, bool) {
	for _, p := range m.Parts {
		if p.MediaType == strings.ToLower(mediaType) {
			return p, true
		}
	}
	return Part{}, false
}

// Text is what a reader sees: the first text/plain part of a multipart
// message or the body of a plain one, with LF line ends.
func (m Message) Text() string {
	body := m.Body
	if len(m.Parts) > 0 {
		p, ok := m.Part("text/plain")
		if !ok {
			return ""
		}
		body = p.Body
	}
	return strings.ReplaceAll(body, "\r\n", "\n")
}

func parse(from string, to []string, data []byte) Message {
	m := Message{From: from, To: to, Data: data}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		m.ParseErr = fmt.Errorf("parse message: %w", err)
		return m
	}
	m.Header = msg.Header
	subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		m.ParseErr = fmt.Errorf("decode subject: %w", err)
		subj = msg.Header.Get("Subject")
	}
	m.Subject = subj
	raw, err := readAllLimited(msg.Body)
	if err != nil {
		m.ParseErr = fmt.Errorf("read body: %w", err)
		return m
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") {
		body, derr := decodeTransfer(msg.Header.Get("Content-Transfer-Encoding"), raw)
		if derr != nil && m.ParseErr == nil {
			m.ParseErr = derr
		}
		m.Body = string(body)
		return m
	}
	m.Body = string(raw)
	parts, err := walk(bytes.NewReader(raw), params["boundary"], 0)
	m.Parts = parts
	if err != nil && m.ParseErr == nil {
		m.ParseErr = err
	}
	return m
}

// maxDepth bounds nested multiparts; real mail nests two or three deep.
const maxDepth = 8

func walk(r io.Reader, boundary string, depth int) ([]Part, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("multipart nested deeper than %d", maxDepth)
	}
	if boundary == "" {
		return nil, fmt.Errorf("multipart without a boundary")
	}
	mr := multipart.NewReader(r, boundary)
	var parts []Part
	for {
		// NextPart, unlike NextRawPart, undoes quoted-printable itself and
		// drops the header; base64 is left to decodeTransfer.
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts, nil
		}
		if err != nil {
			return parts, fmt.Errorf("read part %d: %w", len(parts)+1, err)
		}
		body, err := readAllLimited(p)
		if err != nil {
			return parts, fmt.Errorf("read part %d: %w", len(parts)+1, err)
		}
		mediaType, params, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if strings.HasPrefix(mediaType, "multipart/") {
			sub, err := walk(bytes.NewReader(body), params["boundary"], depth+1)
			parts = append(parts, sub...)
			if err != nil {
				return parts, err
			}
			continue
		}
		body, err = decodeTransfer(p.Header.Get("Content-Transfer-Encoding"), body)
		if err != nil {
			return parts, fmt.Errorf("part %d: %w", len(parts)+1, err)
		}
		if mediaType == "" {
			mediaType = "text/plain" // RFC 2046 5.1: the default in a multipart
		}
		parts = append(parts, Part{Header: p.Header, MediaType: mediaType, Charset: params["charset"], Body: string(body)})
	}
}

func decodeTransfer(cte string, b []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		if err != nil {
			return b, fmt.Errorf("quoted-printable: %w", err)
		}
		return out, nil
	case "base64":
		out, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, &stripSpace{r: bytes.NewReader(b)}))
		if err != nil {
			return b, fmt.Errorf("base64: %w", err)
		}
		return out, nil
	}
	return b, nil
}

// stripSpace drops the line breaks base64 bodies carry every 76 characters.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// readAllLimited reads r up to MaxMessageSize: a part can only be as big as
// the message it came in.
func readAllLimited(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, MaxMessageSize))
}
