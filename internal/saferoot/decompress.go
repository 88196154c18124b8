package saferoot

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrCompression: the stream is compressed in a format this package does not read
// (xz, zstd).
var ErrCompression = errors.New("unsupported compression")

// Limits bound what Extract unpacks and what Decompress lets out. Zero fields take
// the defaults (DefaultBytes, DefaultEntries, DefaultRatio).
type Limits struct {
	// Bytes is the most file content an archive may unpack to.
	Bytes int64
	// Entries is the most entries (files, directories, links) an archive may hold.
	Entries int64
	// Ratio is the most a compressed stream may grow, in uncompressed bytes per
	// compressed byte. It is checked once RatioFloor bytes have come out, so small
	// archives of zeros pass.
	Ratio int64
}

// The default limits, and the output below which the ratio is not checked.
const (
	DefaultBytes   = 10 << 30
	DefaultEntries = 1 << 20
	DefaultRatio   = 100
	RatioFloor     = 16 << 20
)

// LimitError says which limit was passed; it is ErrTooLarge.
type LimitError struct {
	// What is "file", "archive content", "image content", "archive entries",
	// "decompressed stream" or "decompression ratio".
	What  string
	Limit int64
}

// Error says which limit was passed.
func (e *LimitError) Error() string {
	n := strconv.FormatInt(e.Limit, 10)
	switch e.What {
	case "archive entries":
		return "more than " + n + " entries"
	case "decompression ratio":
		return "it decompresses to more than " + n + " times its size"
	}
	return e.What + " larger than " + n + " bytes"
}

// Is makes a LimitError match ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.Bytes <= 0 {
		l.Bytes = DefaultBytes
	}
	if l.Entries <= 0 {
		l.Entries = DefaultEntries
	}
	if l.Ratio <= 0 {
		l.Ratio = DefaultRatio
	}
	return l
}

// stream is the most a tar stream may hold besides its files' content: headers
// (with extended ones) and padding.
func (l Limits) stream() int64 { return l.Bytes + 4096*l.Entries + 1<<20 }

// Decompress returns the uncompressed stream of src (gzip, bzip2 or not compressed)
// and the compression's name ("" for none). The stream fails with ErrTooLarge
// (a *LimitError) when it grows past l.Ratio times the compressed bytes read, or
// past what a tar archive within l can hold. xz and zstd fail with ErrCompression.
func Decompress(src io.Reader, l Limits) (io.Reader, string, error) {
	l = l.WithDefaults()
	in := &countReader{r: src}
	br := bufio.NewReader(in)
	magic, _ := br.Peek(6)
	var out io.Reader
	kind := ""
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, "gzip", fmt.Errorf("gzip: %w", err)
		}
		out, kind = gz, "gzip"
	case bytes.HasPrefix(magic, []byte("BZh")):
		out, kind = bzip2.NewReader(br), "bzip2"
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, "xz", fmt.Errorf("%w: xz-compressed archives are not supported (use gzip)", ErrCompression)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, "zstd", fmt.Errorf("%w: zstd-compressed archives are not supported (use gzip)", ErrCompression)
	default:
		return &boundReader{r: br, in: in, max: l.stream()}, "", nil
	}
	return &boundReader{r: out, in: in, max: l.stream(), ratio: l.Ratio}, kind, nil
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// boundReader fails once more than max bytes came out, or (with ratio set) more
// than ratio times what came in past RatioFloor.
type boundReader struct {
	r        io.Reader
	in       *countReader
	out, max int64
	ratio    int64
	exceeded error
}

func (b *boundReader) Read(p []byte) (int, error) {
	if b.exceeded != nil {
		return 0, b.exceeded
	}
	n, err := b.r.Read(p)
	b.out += int64(n)
	switch {
	case b.out > b.max:
		b.exceeded = &LimitError{What: "decompressed stream", Limit: b.max}
	case b.ratio > 0 && b.out > RatioFloor && b.out > b.ratio*b.in.n:
		b.exceeded = &LimitError{What: "decompression ratio", Limit: b.ratio}
	}
	if b.exceeded != nil {
		return 0, b.exceeded
	}
	return n, err
}

// SniffTar reports whether src is a tar archive, plain or compressed as Decompress
// reads it. xz and zstd fail with ErrCompression.
func SniffTar(src io.Reader) (bool, error) {
	r, _, err := Decompress(src, Limits{})
	if err != nil {
		if errors.Is(err, ErrCompression) {
			return false, err
		}
		return false, nil // a file that merely starts like gzip
	}
	hdr := make([]byte, 512)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return false, nil
	}
	return bytes.Equal(hdr[257:262], []byte("ustar")), nil
}
