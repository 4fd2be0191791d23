package export

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// OutputFile is where one output's bytes go. For a regular file (or a path
// that does not exist yet) they go to a temporary name unique to this
// OutputFile, created with O_EXCL next to the final name, and Commit makes
// them durable (fsync) and renames them over the final name, so the final
// name only ever holds a complete file. A stream — "-" (stdout), a FIFO, a
// character device or a symlink to one — is written in place: Commit only
// flushes, and nothing is ever created, truncated or renamed.
type OutputFile struct {
	w      io.Writer
	f      *os.File // nil for stdout
	tmp    string   // "" for a stream
	final  string
	closed bool
}

// IsStream reports whether path is "-" or names something other than a
// regular file (following symlinks). A missing path is not a stream.
func IsStream(path string) (bool, error) {
	if path == "-" {
		return true, nil
	}
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.IsDir() {
		return false, fmt.Errorf("output %s is a directory (end it with / for a partitioned dataset)", path)
	}
	return !st.Mode().IsRegular(), nil
}

// RunID returns a random identifier for one run's temporary and part names
// (16 hex digits).
func RunID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// OpenFile opens path for output; stdout is what "-" writes to.
func OpenFile(path string, stdout io.Writer) (*OutputFile, error) {
	stream, err := IsStream(path)
	if err != nil {
		return nil, err
	}
	if path == "-" {
		if stdout == nil {
			stdout = os.Stdout
		}
		return &OutputFile{w: stdout, final: "stdout"}, nil
	}
	if stream {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open output: %w", err)
		}
		return &OutputFile{w: f, f: f, final: path}, nil
	}
	tmp := fmt.Sprintf("%s.%s.tmp", path, RunID())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &OutputFile{w: f, f: f, tmp: tmp, final: path}, nil
}

// Write writes to the temporary file or the stream.
func (o *OutputFile) Write(b []byte) (int, error) { return o.w.Write(b) }

// Name is the final name ("stdout" for -).
func (o *OutputFile) Name() string { return o.final }

// Stream reports whether o is written in place.
func (o *OutputFile) Stream() bool { return o.tmp == "" }

// Commit makes a file durable under its final name: fsync, close, rename,
// fsync of the directory. A stream is only closed (stdout is left open).
func (o *OutputFile) Commit() error {
	if o.closed {
		return errors.New("output already closed")
	}
	o.closed = true
	if o.tmp == "" {
		if o.f != nil {
			return o.f.Close()
		}
		return nil
	}
	if err := o.f.Sync(); err != nil {
		o.f.Close()
		os.Remove(o.tmp)
		return fmt.Errorf("sync %s: %w", o.final, err)
	}
	if err := o.f.Close(); err != nil {
		os.Remove(o.tmp)
		return fmt.Errorf("close %s: %w", o.final, err)
	}
	if err := os.Rename(o.tmp, o.final); err != nil {
		os.Remove(o.tmp)
		return fmt.Errorf("rename %s: %w", o.tmp, err)
	}
	return SyncDir(filepath.Dir(o.final))
}

// Abort drops a file's temporary name and leaves the final name as it was;
// a stream is closed.
func (o *OutputFile) Abort() {
	if o.closed {
		return
	}
	o.closed = true
	if o.f != nil {
		o.f.Close()
	}
	if o.tmp != "" {
		os.Remove(o.tmp)
	}
}

// SyncDir makes a rename or a removal in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// CheckLocal refuses an output path that is a URL (s3://bucket/…), which
// would otherwise be written as a local directory named after its scheme.
func CheckLocal(path string) error {
	if scheme, _, ok := strings.Cut(path, "://"); ok && scheme != "" && !strings.ContainsAny(scheme, "/.") {
		return fmt.Errorf("output %s: %s:// outputs are not supported yet; write to a local file or DIR/ and copy it", path, scheme)
	}
	return nil
}
