package interpreter

import (
	"encoding/json"
	"testing"
)

// recorded builds an iopub message as kernels send it.
func recorded(msgType, content string) *Message {
	return &Message{Header: Header{MsgType: msgType, Date: "2026-11-02T10:00:00.123456Z"}, Content: json.RawMessage(content)}
}

func TestShapeIOPub(t *testing.T) {
	cases := []struct {
		name    string
		msg     *Message
		want    string // the line, "" for none
		isError bool
	}{
		{"stdout stream", recorded("stream", `{"name":"stdout","text":"hi\n"}`),
			`{"type":"stdout","text":"hi\n","timestamp":"2026-11-02T10:00:00.123456Z"}`, false},
		{"stderr stream", recorded("stream", `{"name":"stderr","text":"oops"}`),
			`{"type":"stderr","text":"oops","timestamp":"2026-11-02T10:00:00.123456Z"}`, false},
		{"execute_input gives the count", recorded("execute_input", `{"code":"1+1","execution_count":7}`),
			`{"type":"number_of_executions","execution_count":7}`, false},
		{"main result, quotes stripped", recorded("execute_result", `{"execution_count":1,"data":{"text/plain":"'bar'"},"metadata":{}}`),
			`{"type":"result","text":"bar","extra":{},"is_main_result":true}`, false},
		{"double quotes stripped once", recorded("execute_result", `{"data":{"text/plain":"\"\"x\"\""}}`),
			`{"type":"result","text":"\"x\"","extra":{},"is_main_result":true}`, false},
		{"number text untouched", recorded("execute_result", `{"data":{"text/plain":"2"}}`),
			`{"type":"result","text":"2","extra":{},"is_main_result":true}`, false},
		{"display data with a plot", recorded("display_data", `{"data":{"text/plain":"<Figure size 640x480 with 1 Axes>","image/png":"iVBORw0KGgo=","e2b/chart":{"type":"bar","title":"T","elements":[]}},"metadata":{}}`),
			`{"type":"result","text":"<Figure size 640x480 with 1 Axes>","png":"iVBORw0KGgo=","chart":{"type":"bar","title":"T","elements":[]},"extra":{},"is_main_result":false}`, false},
		{"an empty chart is left out", recorded("display_data", `{"data":{"text/plain":"f","e2b/chart":{}}}`),
			`{"type":"result","text":"f","extra":{},"is_main_result":false}`, false},
		{"a DataFrame", recorded("execute_result", `{"data":{"text/plain":"   a\n0  1","text/html":"<table></table>","e2b/data":{"a":[1]}}}`),
			`{"type":"result","text":"   a\n0  1","html":"<table></table>","data":{"a":[1]},"extra":{},"is_main_result":true}`, false},
		{"json stays an object; unknown MIME types go to extra", recorded("execute_result", `{"data":{"application/json":{"k":[1,2]},"application/vnd.custom+json":{"x":1},"text/plain":"x"}}`),
			`{"type":"result","text":"x","json":{"k":[1,2]},"extra":{"application/vnd.custom+json":{"x":1}},"is_main_result":true}`, false},
		{"every string field", recorded("display_data", `{"data":{"text/markdown":"**m**","image/svg+xml":"<svg/>","image/jpeg":"/9j/","application/pdf":"JVBE","text/latex":"$x$","application/javascript":"alert(1)"}}`),
			`{"type":"result","markdown":"**m**","svg":"<svg/>","jpeg":"/9j/","pdf":"JVBE","latex":"$x$","javascript":"alert(1)","extra":{},"is_main_result":false}`, false},
		{"a MIME value given as a list of lines", recorded("display_data", `{"data":{"text/html":["<b>", "x</b>"]}}`),
			`{"type":"result","html":"<b>x</b>","extra":{},"is_main_result":false}`, false},
		{"error with a coloured traceback", recorded("error", `{"ename":"NameError","evalue":"name 'xyz' is not defined","traceback":["\u001b[0;31m---\u001b[0m","\u001b[0;31mNameError\u001b[0m: name 'xyz' is not defined"]}`),
			`{"type":"error","name":"NameError","value":"name 'xyz' is not defined","traceback":"---\nNameError: name 'xyz' is not defined"}`, true},
		{"status has no line", recorded("status", `{"execution_state":"busy"}`), "", false},
		{"clear_output has no line", recorded("clear_output", `{"wait":false}`), "", false},
		{"broken content has no line", recorded("stream", `not json`), "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ShapeIOPub(c.msg)
			if string(got.Line) != c.want {
				t.Errorf("line\n got %s\nwant %s", got.Line, c.want)
			}
			if got.Error != c.isError {
				t.Errorf("error %v, want %v", got.Error, c.isError)
			}
		})
	}
}

func TestSignerRoundTripAndTampering(t *testing.T) {
	s := NewSigner("secret")
	m, err := NewMessage("session", "execute_request", nil, map[string]string{"code": "1"})
	if err != nil {
		t.Fatal(err)
	}
	m.Identities = [][]byte{[]byte("peer")}
	frames, err := s.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.Decode(frames)
	if err != nil {
		t.Fatal(err)
	}
	if back.Header.MsgID != m.Header.MsgID || string(back.Identities[0]) != "peer" || string(back.Content) != `{"code":"1"}` {
		t.Fatalf("round trip: %+v", back)
	}
	cases := []struct {
		name   string
		frames func() [][]byte
		signer Signer
	}{
		{"content changed", func() [][]byte {
			f := append([][]byte(nil), frames...)
			f[len(f)-1] = []byte(`{"code":"rm -rf /"}`)
			return f
		}, s},
		{"another key", func() [][]byte { return frames }, NewSigner("other")},
		{"no delimiter", func() [][]byte { return frames[2:] }, s},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.signer.Decode(c.frames()); err == nil {
				t.Fatal("a bad message was accepted")
			}
		})
	}
}
