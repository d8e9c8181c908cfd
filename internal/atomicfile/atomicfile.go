// Package atomicfile replaces files whole: a reader sees the old contents
// or the new, never a half-written file.
package atomicfile

import "os"

// Write writes b to path.tmp with mode perm and renames it over path.
func Write(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
