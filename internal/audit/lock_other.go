//go:build !unix

package audit

import "os"

// lockDir only creates the lock file here: this platform has no flock, so
// keeping two processes off one log is the operator's job.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
