// Package interpreter is the code interpreter's execution server: the HTTP API of
// port 49999 that the @e2b/code-interpreter clients speak (POST /execute streaming
// NDJSON, contexts, /health), kernels started from Jupyter kernelspecs and driven
// over the Jupyter messaging protocol on ZeroMQ, and the shaping of the kernels'
// messages into the clients' stream lines (results with their MIME fields, charts,
// errors). cmd/interpreter is its static binary, bind-mounted into sandboxes.
package interpreter

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ProtocolVersion is the Jupyter messaging protocol version the server speaks.
const ProtocolVersion = "5.3"

// delimiter separates a message's routing identities from its parts.
var delimiter = []byte("<IDS|MSG>")

// Header is a Jupyter message header (also used as the parent header).
type Header struct {
	MsgID    string `json:"msg_id,omitempty"`
	Session  string `json:"session,omitempty"`
	Username string `json:"username,omitempty"`
	Date     string `json:"date,omitempty"`
	MsgType  string `json:"msg_type,omitempty"`
	Version  string `json:"version,omitempty"`
}

// Message is one Jupyter message.
type Message struct {
	// Identities are the ZeroMQ routing frames before the delimiter.
	Identities [][]byte
	Header     Header
	Parent     Header
	Metadata   json.RawMessage
	Content    json.RawMessage
	Buffers    [][]byte
}

// ErrBadSignature is a message whose HMAC does not match the connection's key.
var ErrBadSignature = errors.New("jupyter message: bad signature")

// Signer signs and checks messages with a connection's key (HMAC-SHA256); an
// empty key signs nothing, as the protocol allows.
type Signer struct{ key []byte }

// NewSigner makes a signer for key.
func NewSigner(key string) Signer { return Signer{key: []byte(key)} }

func (s Signer) sign(parts ...[]byte) []byte {
	if len(s.key) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write(p)
	}
	out := make([]byte, hex.EncodedLen(m.Size()))
	hex.Encode(out, m.Sum(nil))
	return out
}

// Encode turns m into ZeroMQ frames.
func (s Signer) Encode(m *Message) ([][]byte, error) {
	header, err := json.Marshal(m.Header)
	if err != nil {
		return nil, fmt.Errorf("encode jupyter message header: %w", err)
	}
	parent, err := json.Marshal(m.Parent)
	if err != nil {
		return nil, fmt.Errorf("encode jupyter message parent: %w", err)
	}
	meta, content := m.Metadata, m.Content
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	if len(content) == 0 {
		content = json.RawMessage("{}")
	}
	frames := make([][]byte, 0, len(m.Identities)+6+len(m.Buffers))
	frames = append(frames, m.Identities...)
	frames = append(frames, delimiter, s.sign(header, parent, meta, content), header, parent, meta, content)
	return append(frames, m.Buffers...), nil
}

// Decode parses ZeroMQ frames into a message, checking its signature.
func (s Signer) Decode(frames [][]byte) (*Message, error) {
	i := 0
	for i < len(frames) && !bytes.Equal(frames[i], delimiter) {
		i++
	}
	if len(frames)-i < 6 {
		return nil, fmt.Errorf("decode jupyter message: %d frames, no delimiter or too few parts", len(frames))
	}
	sig, parts := frames[i+1], frames[i+2:i+6]
	if len(s.key) > 0 && !hmac.Equal(sig, s.sign(parts...)) {
		return nil, ErrBadSignature
	}
	m := &Message{Identities: frames[:i], Metadata: parts[2], Content: parts[3], Buffers: frames[i+6:]}
	if err := json.Unmarshal(parts[0], &m.Header); err != nil {
		return nil, fmt.Errorf("decode jupyter message header: %w", err)
	}
	if err := json.Unmarshal(parts[1], &m.Parent); err != nil {
		return nil, fmt.Errorf("decode jupyter message parent header: %w", err)
	}
	return m, nil
}

// NewMessage makes a message of type msgType in session, replying to parent when
// it is set, with content marshalled from content.
func NewMessage(session, msgType string, parent *Header, content any) (*Message, error) {
	b, err := json.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("encode %s content: %w", msgType, err)
	}
	m := &Message{
		Header: Header{MsgID: newUUID(), Session: session, Username: "lelantos", MsgType: msgType,
			Version: ProtocolVersion, Date: time.Now().UTC().Format(time.RFC3339Nano)},
		Metadata: json.RawMessage("{}"), Content: b,
	}
	if parent != nil {
		m.Parent = *parent
	}
	return m, nil
}
