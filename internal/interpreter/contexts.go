package interpreter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Errors the HTTP layer maps to statuses.
var (
	// ErrContextNotFound: no context has the id.
	ErrContextNotFound = errors.New("context not found")
	// ErrUnknownLanguage: no kernel runs the language.
	ErrUnknownLanguage = errors.New("unknown language")
	// ErrBadCwd: the working directory asked for is not a directory.
	ErrBadCwd = errors.New("bad working directory")
)

// Context is one kernel the clients address by id: its language, working
// directory, and the lock that runs one execution at a time.
type Context struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`

	lang language
	// turn is a one-slot lock held for an execution or a restart.
	turn chan struct{}
	// mu guards kernel, generation and envsSet.
	mu     sync.Mutex
	kernel *Kernel
	// generation counts restarts, so that an execution can tell that its
	// kernel was replaced under it.
	generation int
	// envsSet is true once the sandbox's environment is in the kernel.
	envsSet bool
}

// Options configures a Manager.
type Options struct {
	// KernelDirs are where kernelspecs are; DefaultKernelDirs when nil.
	KernelDirs []string
	// RuntimeDir holds the kernels' connection files.
	RuntimeDir string
	// DefaultCwd is the working directory of contexts that name none.
	DefaultCwd string
	// KernelEnv is the environment of kernels (KEY=VALUE).
	KernelEnv []string
	// ReadyTimeout bounds a kernel's start; default 30s, within the clients'
	// request timeout, so that a kernel that cannot start is an error the
	// client sees.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Manager keeps the contexts, in creation order, and each language's default.
type Manager struct {
	opts Options

	mu       sync.Mutex
	contexts []*Context
	defaults map[string]*Context
	// creating serializes the creation of each language's default context.
	creating map[string]*sync.Mutex
}

// NewManager makes a Manager with no contexts.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DefaultCwd == "" {
		opts.DefaultCwd = "/"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	return &Manager{opts: opts, defaults: map[string]*Context{}, creating: map[string]*sync.Mutex{}}
}

// startKernel starts a kernel for c.
func (m *Manager) startKernel(ctx context.Context, c *Context) (*Kernel, error) {
	return StartKernel(ctx, KernelOptions{Name: c.lang.kernel, Dirs: m.opts.KernelDirs, Cwd: c.Cwd, Env: m.opts.KernelEnv,
		RuntimeDir: m.opts.RuntimeDir, ReadyTimeout: m.opts.ReadyTimeout, Logger: m.opts.Logger, Drain: c.lang.drain})
}

// Create starts a context of language (normalized here) in cwd (DefaultCwd when
// empty).
func (m *Manager) Create(ctx context.Context, lang, cwd string) (*Context, error) {
	lang = NormalizeLanguage(lang)
	l, ok := languages[lang]
	if !ok {
		return nil, fmt.Errorf("language %q: %w (known: %v)", lang, ErrUnknownLanguage, Languages())
	}
	if cwd == "" {
		cwd = m.opts.DefaultCwd
	}
	if fi, err := os.Stat(cwd); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("cwd: %q is not a directory: %w", cwd, ErrBadCwd)
	}
	c := &Context{ID: newUUID(), Language: lang, Cwd: cwd, lang: l, turn: make(chan struct{}, 1)}
	k, err := m.startKernel(ctx, c)
	if errors.Is(err, ErrNoKernel) {
		return nil, fmt.Errorf("language %q: %w: its kernel is not installed", lang, ErrUnknownLanguage)
	}
	if err != nil {
		return nil, fmt.Errorf("create a %s context: %w", lang, err)
	}
	c.kernel = k
	m.mu.Lock()
	m.contexts = append(m.contexts, c)
	m.mu.Unlock()
	m.opts.Logger.Info("context created", "id", c.ID, "language", lang, "cwd", cwd)
	return c, nil
}

// Default returns language's default context, creating it on first use.
// TypeScript's is JavaScript's: one kernel runs both, and each holds memory.
func (m *Manager) Default(ctx context.Context, lang string) (*Context, error) {
	lang = NormalizeLanguage(lang)
	if lang == "typescript" {
		lang = "javascript"
	}
	m.mu.Lock()
	if c := m.defaults[lang]; c != nil {
		m.mu.Unlock()
		return c, nil
	}
	lock := m.creating[lang]
	if lock == nil {
		lock = &sync.Mutex{}
		m.creating[lang] = lock
	}
	m.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	m.mu.Lock()
	c := m.defaults[lang]
	m.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := m.Create(ctx, lang, "")
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.defaults[lang] = c
	m.mu.Unlock()
	return c, nil
}

// WarmUp runs, in c's turn, what a first execution runs in c's kernel, and leaves
// nothing of it behind (see Kernel.warmUp).
func (m *Manager) WarmUp(ctx context.Context, c *Context) error {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.turn }()
	if err := m.ensureKernel(ctx, c); err != nil {
		return err
	}
	c.mu.Lock()
	k := c.kernel
	c.mu.Unlock()
	return k.warmUp(ctx, c.lang, c.lang.warm)
}

// Get returns the context with id.
func (m *Manager) Get(id string) (*Context, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.contexts {
		if c.ID == id {
			return c, nil
		}
	}
	return nil, fmt.Errorf("context %s: %w", id, ErrContextNotFound)
}

// List returns every context in creation order.
func (m *Manager) List() []*Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Context(nil), m.contexts...)
}

// Remove shuts the context's kernel down and forgets it.
func (m *Manager) Remove(id string) error {
	m.mu.Lock()
	var c *Context
	for i, x := range m.contexts {
		if x.ID == id {
			c = x
			m.contexts = append(m.contexts[:i:i], m.contexts[i+1:]...)
			break
		}
	}
	for lang, d := range m.defaults {
		if d == c {
			delete(m.defaults, lang)
		}
	}
	m.mu.Unlock()
	if c == nil {
		return fmt.Errorf("context %s: %w", id, ErrContextNotFound)
	}
	c.mu.Lock()
	k := c.kernel
	c.kernel = nil
	c.generation++
	c.mu.Unlock()
	if k != nil {
		k.Close()
	}
	m.opts.Logger.Info("context removed", "id", id)
	return nil
}

// Restart replaces the context's kernel by a new one: all state is gone, the id
// and place stay. An execution running meanwhile ends with ContextRestarting.
func (m *Manager) Restart(ctx context.Context, id string) error {
	c, err := m.Get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	old := c.kernel
	c.kernel = nil
	c.generation++
	c.mu.Unlock()
	if old != nil {
		old.Close() // an execution in flight ends now and gives its turn back
	}
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.turn }()
	return m.ensureKernel(ctx, c)
}

// ensureKernel starts a kernel for c when it has none or its kernel died; the
// caller holds c's turn.
func (m *Manager) ensureKernel(ctx context.Context, c *Context) error {
	c.mu.Lock()
	k := c.kernel
	c.mu.Unlock()
	if k != nil {
		select {
		case <-k.Dead():
			k.Close()
		default:
			return nil
		}
	}
	nk, err := m.startKernel(ctx, c)
	if err != nil {
		return fmt.Errorf("restart context %s: %w", c.ID, err)
	}
	c.mu.Lock()
	c.kernel, c.envsSet = nk, false
	c.mu.Unlock()
	m.opts.Logger.Info("context kernel started", "id", c.ID, "language", c.Language)
	return nil
}

// Close shuts every kernel down.
func (m *Manager) Close() {
	for _, c := range m.List() {
		_ = m.Remove(c.ID)
	}
}
