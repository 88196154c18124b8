package bashkernel

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// statusFD is the descriptor on which the shell reports a finished cell.
const statusFD = 19

// shellInit sets the interactive shell up: no prompts, no history expansion,
// and a prompt command that, after each cell (finished or interrupted),
// writes the cell's token to stdout and stderr and its status to statusFD.
var shellInit = strings.Join([]string{
	"exec " + strconv.Itoa(statusFD) + ">&3 3>&-",
	"PS1= PS2= PS0=; set +H",
	`__lelantos_done() { local s=$?; if [ -n "$__lelantos_tok" ]; then printf '\036%s\036' "$__lelantos_tok"; ` +
		`printf '\036%s\036' "$__lelantos_tok" >&2; printf '%s %s\n' "$__lelantos_tok" "$s" >&` + strconv.Itoa(statusFD) + `; __lelantos_tok=; fi; }`,
	"PROMPT_COMMAND=__lelantos_done",
}, "\n") + "\n"

// shell is one interactive bash whose cells are sourced from files, so that
// its state (variables, functions, working directory) lasts from cell to cell.
// An interrupt (SIGINT to the process group) aborts the cell as Ctrl-C would.
type shell struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	status *bufio.Reader
	dir    string

	mu sync.Mutex
	// tok is the running cell's token; out receives its output.
	tok  string
	out  func(stream, text string)
	seen map[string]chan struct{}
}

// startShell starts bash; output outside a cell is dropped.
func startShell(dir string) (*shell, error) {
	cmd := exec.Command("bash", "--noprofile", "--norc", "--noediting", "-i")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{sw}
	if err := cmd.Start(); err != nil {
		_ = sr.Close()
		_ = sw.Close()
		return nil, fmt.Errorf("start bash: %w", err)
	}
	_ = sw.Close()
	s := &shell{cmd: cmd, stdin: stdin, status: bufio.NewReader(sr), dir: dir, seen: map[string]chan struct{}{}}
	go s.pump("stdout", stdout)
	go s.pump("stderr", stderr)
	if _, err := io.WriteString(stdin, shellInit); err != nil {
		return nil, fmt.Errorf("set bash up: %w", err)
	}
	return s, nil
}

// run runs code as one cell and returns its exit status; out gets its output
// as it comes. It returns an error when the shell has exited.
func (s *shell) run(code string, out func(stream, text string)) (int, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	tok := "lelantos-" + hex.EncodeToString(b[:])
	file := filepath.Join(s.dir, "cell-"+tok+".sh")
	if err := os.WriteFile(file, []byte(code), 0o600); err != nil {
		return 0, fmt.Errorf("write the cell: %w", err)
	}
	defer os.Remove(file)
	seen := make(chan struct{}, 2)
	s.mu.Lock()
	s.tok, s.out, s.seen[tok] = "\036"+tok+"\036", out, seen
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.tok, s.out = "", nil
		delete(s.seen, tok)
		s.mu.Unlock()
	}()
	line := fmt.Sprintf("__lelantos_tok=%s; source %s </dev/null\n", tok, file)
	if _, err := io.WriteString(s.stdin, line); err != nil {
		return 0, fmt.Errorf("send the cell: %w", err)
	}
	for {
		l, err := s.status.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("bash exited: %w", err)
		}
		t, code, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok || t != tok {
			continue
		}
		// The output before the token on both streams has been handed out,
		// unless the cell moved the shell's stdout or stderr elsewhere.
		timeout := time.After(2 * time.Second)
		for range 2 {
			select {
			case <-seen:
			case <-timeout:
			}
		}
		status, _ := strconv.Atoi(code)
		return status, nil
	}
}

// pump hands a stream's output to the running cell, up to its token.
func (s *shell) pump(name string, r io.Reader) {
	buf := make([]byte, 64<<10)
	var pending []byte
	for {
		n, err := r.Read(buf)
		pending = append(pending, buf[:n]...)
		pending = s.deliver(name, pending)
		if err != nil {
			return
		}
	}
}

// deliver hands out what of pending belongs to the running cell and returns
// what must wait for more bytes (a possible start of the token, or of a UTF-8
// character).
func (s *shell) deliver(name string, pending []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		tok := []byte(s.tok)
		if len(tok) > 0 {
			if i := bytes.Index(pending, tok); i >= 0 {
				s.emitLocked(name, pending[:i])
				pending = pending[i+len(tok):]
				if ch := s.seen[strings.Trim(s.tok, "\036")]; ch != nil {
					ch <- struct{}{}
				}
				continue
			}
		}
		keep := partialSuffix(pending, tok)
		if k := incompleteUTF8(pending[:len(pending)-keep]); k > 0 {
			keep += k
		}
		s.emitLocked(name, pending[:len(pending)-keep])
		return append([]byte(nil), pending[len(pending)-keep:]...)
	}
}

func (s *shell) emitLocked(name string, b []byte) {
	if len(b) > 0 && s.out != nil {
		s.out(name, string(b))
	}
}

// partialSuffix is the length of the longest end of b that starts tok.
func partialSuffix(b, tok []byte) int {
	for n := min(len(b), len(tok)-1); n > 0; n-- {
		if bytes.HasPrefix(tok, b[len(b)-n:]) {
			return n
		}
	}
	return 0
}

// incompleteUTF8 is how many bytes at the end of b start a UTF-8 character
// that is not complete yet.
func incompleteUTF8(b []byte) int {
	for n := 1; n <= 3 && n <= len(b); n++ {
		c := b[len(b)-n]
		if c < 0x80 {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}
