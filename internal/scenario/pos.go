package scenario

import (
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Pos is where a scenario, check or case is defined, "file:line" with the
// file relative to the module root (e.g. "internal/scenario/table.go:120").
type Pos string

// moduleRoot is the directory holding this module's go.mod, with a trailing
// separator, as recorded in this file's debug information.
var moduleRoot = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	// file is <root>/internal/scenario/pos.go.
	return filepath.Dir(filepath.Dir(filepath.Dir(file))) + string(filepath.Separator)
}()

// Here returns the position of its caller's caller when skip is 0: call it
// from a constructor to record where the constructor was called.
func Here(skip int) Pos {
	_, file, line, ok := runtime.Caller(skip + 2)
	if !ok {
		return "unknown position"
	}
	if moduleRoot != string(filepath.Separator) {
		file = strings.TrimPrefix(file, moduleRoot)
	}
	return Pos(filepath.ToSlash(file) + ":" + strconv.Itoa(line))
}
