// Package gen is the code gqlgen generates from ../schema.graphqls: the
// executable schema and the input and payload models. Do not edit it by
// hand; run `go generate ./graphql/`.
package gen
