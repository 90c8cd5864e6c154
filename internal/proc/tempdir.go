package proc

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ownerFile names the process that owns a temporary directory.
const ownerFile = ".ddhil-owner"

// TempDir makes a private temporary directory (os.MkdirTemp("", prefix+"*"))
// that records its owner, after removing the directories of the same
// prefix whose owner is gone: a harness killed with SIGKILL cannot clean up
// after itself, so the next one does.
func TempDir(prefix string) (string, error) {
	RemoveStale(os.TempDir(), prefix)
	dir, err := os.MkdirTemp("", prefix+"*")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// RemoveStale removes the directories prefix* under base whose owner
// process no longer runs. Directories without an owner record (made by
// something else, or by an older ddhil) are left alone.
func RemoveStale(base, prefix string) (removed []string) {
	matches, _ := filepath.Glob(filepath.Join(base, prefix+"*"))
	for _, dir := range matches {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || alive(pid) {
			continue
		}
		if os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
	}
	return removed
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
