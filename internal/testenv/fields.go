package testenv

import "reflect"

// ZeroFields names the fields of the struct v (a struct or a pointer to
// one) that hold their zero value. A test that means to set every field
// (a configuration that must survive a trip through a file, say) checks
// that it returns none, so a field added later cannot be left out of it
// unnoticed.
func ZeroFields(v any) []string {
	rv := reflect.Indirect(reflect.ValueOf(v))
	var zero []string
	for i := range rv.NumField() {
		if f := rv.Type().Field(i); f.IsExported() && rv.Field(i).IsZero() {
			zero = append(zero, f.Name)
		}
	}
	return zero
}
