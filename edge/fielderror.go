package edge

import (
	"errors"
	"fmt"
)

// FieldError is one problem of a configuration, in the words of its own
// fields: the field at fault, what is wrong with it and the fix. The
// Validate methods of every layer's configuration (this package's Config,
// and those of resume, transports and tls) return their problems as
// FieldErrors joined with errors.Join, so that a program that fills the
// fields from settings of its own, as cmd/edge does from its flags, can
// report each problem under the name of its setting with errors.As and
// Problem, without parsing the message.
type FieldError struct {
	// Field is the path of the field at fault: its name, after the names
	// of the fields that hold its configuration ("Hub.QueueBytes").
	Field string
	// Format and Args say what is wrong and the fix, as for fmt.Errorf
	// (%w included). An argument of type FieldRef names another field, so
	// that Problem can name it as the caller calls it.
	Format string
	Args   []any
}

// FieldRef is the path of a field that a FieldError's problem refers to,
// relative to the same configuration as FieldError.Field.
type FieldRef string

// Invalid returns the FieldError of field: format and args say what is
// wrong and the fix, as for fmt.Errorf; name other fields with FieldRef
// arguments.
func Invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Format: format, Args: args}
}

// Error returns "Field: problem", with fields named by their paths.
func (e *FieldError) Error() string {
	return e.Field + ": " + e.Problem(func(path string) string { return path })
}

// Problem returns what is wrong and the fix, without the field at fault,
// naming each field it refers to (each FieldRef) as name says.
func (e *FieldError) Problem(name func(path string) string) string {
	args := make([]any, len(e.Args))
	for i, a := range e.Args {
		if ref, ok := a.(FieldRef); ok {
			a = name(string(ref))
		}
		args[i] = a
	}
	return fmt.Errorf(e.Format, args...).Error()
}

// Unwrap returns the first error among the arguments (the cause, such as
// a parse error), or nil.
func (e *FieldError) Unwrap() error {
	for _, a := range e.Args {
		if err, ok := a.(error); ok {
			return err
		}
	}
	return nil
}

// InField returns the problems of err, the error of the Validate of a
// configuration that the field called parent holds, with the paths of
// their fields (and of those they refer to) starting at parent:
// "QueueBytes" becomes "Hub.QueueBytes". A problem that is not a
// FieldError is kept as it is. InField returns nil when err is nil, and
// otherwise one error per problem, ready for errors.Join.
func InField(parent string, err error) []error {
	all := Problems(err)
	if all == nil {
		return nil
	}
	out := make([]error, len(all))
	for i, e := range all {
		var fe *FieldError
		if !errors.As(e, &fe) {
			out[i] = e
			continue
		}
		args := make([]any, len(fe.Args))
		for j, a := range fe.Args {
			if ref, ok := a.(FieldRef); ok {
				a = FieldRef(parent + "." + string(ref))
			}
			args[j] = a
		}
		out[i] = &FieldError{Field: parent + "." + fe.Field, Format: fe.Format, Args: args}
	}
	return out
}

// Problems returns the problems that err, the error of a Validate,
// joins (with errors.Join): err itself when it joins none, nil when it is
// nil.
func Problems(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// CheckNotNegative adds to errs the problem of the field at path when v is
// negative: every size, count and duration of a configuration is positive,
// or zero for its default.
func CheckNotNegative[T ~int | ~int64](errs *[]error, path string, v T) {
	if v < 0 {
		*errs = append(*errs, Invalid(path, "%v is negative; use a positive value, or zero for the default", v))
	}
}

// CheckMaxPayload adds to errs the problem of the field at path when the
// payload size v is over MaxPayloadLimit.
func CheckMaxPayload(errs *[]error, path string, v int) {
	if v > MaxPayloadLimit {
		*errs = append(*errs, Invalid(path, "%d bytes is over the limit of %d (16 MiB); lower it", v, MaxPayloadLimit))
	}
}
