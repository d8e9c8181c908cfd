package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// maxBodyLines is the longest a function's body may be, in lines between
// its braces, unless its doc comment says why (longReason).
const maxBodyLines = 80

// longReason matches the line of a doc comment that gives the reason for a
// long function: `// Long: <reason>`.
var longReason = regexp.MustCompile(`(?m)^Long: \S`)

// moduleDir returns the directory of the module's go.mod.
func moduleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not in a module")
	}
	return filepath.Dir(gomod)
}

// sourceFiles returns the module's non-test Go files, relative to dir:
// nested modules (tools/), testdata and hidden directories left out.
func sourceFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == dir {
				return nil
			}
			n := d.Name()
			if n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			r, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(r))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// funcName is how messages name a function: Name, or
// Receiver.Name for a method.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	typ := fn.Recv.List[0].Type
	for {
		switch x := typ.(type) {
		case *ast.StarExpr:
			typ = x.X
			continue
		case *ast.IndexExpr:
			typ = x.X
			continue
		case *ast.IndexListExpr:
			typ = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + fn.Name.Name
		}
		return fn.Name.Name
	}
}

// TestNoLongFunctions fails for a function or method of the module (not
// generated, not a test file) whose body is longer than maxBodyLines,
// unless its doc comment has a `// Long: <reason>` line.
func TestNoLongFunctions(t *testing.T) {
	dir := moduleDir(t)
	fset := token.NewFileSet()
	for _, file := range sourceFiles(t, dir) {
		f, err := parser.ParseFile(fset, filepath.Join(dir, file), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		if ast.IsGenerated(f) {
			continue
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			lines := fset.Position(fn.Body.Rbrace).Line - fset.Position(fn.Body.Lbrace).Line - 1
			if lines <= maxBodyLines || fn.Doc != nil && longReason.MatchString(fn.Doc.Text()) {
				continue
			}
			t.Errorf("%s:%d: %s is %d lines long (at most %d): split it, or say why it is not in a `// Long: <reason>` line of its doc comment",
				file, fset.Position(fn.Pos()).Line, funcName(fn), lines, maxBodyLines)
		}
	}
}
