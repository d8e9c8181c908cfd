// Package archtest holds no code, only tests that keep the architecture
// honest over the whole module:
//
//   - layering_test.go checks, from `go list`, who may import whom: the root
//     package imports no project package, package builder (the contract
//     between the control plane and its builders) imports only the root
//     package and package dockerfile, adapters import each other sideways
//     only along the edges listed there (each with its reason), and the
//     agent (and the slipway-agent binary) links no server-side package;
//   - longfunc_test.go fails for a function body longer than 80 lines
//     whose doc comment gives no reason (a `// Long: <reason>` line).
//
// Its tests run the go command and read the module's source; they import
// no project package, and no package may import this one.
package archtest
