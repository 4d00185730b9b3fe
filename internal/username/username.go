// Package username defines which account names Parley accepts, as specified
// in docs/server.md §3.1. Server and client apply the same rules, so a
// client can refuse a bad name before asking the server.
package username

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Length limits, in bytes (all allowed characters are ASCII).
const (
	MinLength = 3
	MaxLength = 32
)

// ErrInvalid is matched by every refusal; the error text says which rule.
var ErrInvalid = errors.New("username: invalid")

type invalidError struct{ reason string }

func (e *invalidError) Error() string        { return "username: " + e.reason }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, args ...any) error {
	return &invalidError{reason: fmt.Sprintf(format, args...)}
}

// reserved names could mislead other users into thinking they speak with the
// operator or the software.
var reserved = []string{
	"abuse", "admin", "administrator", "api", "help", "hostmaster", "info",
	"mail", "moderator", "no-reply", "noreply", "official", "operator",
	"parley", "parleyd", "postmaster", "root", "security", "server", "staff",
	"support", "system", "webmaster", "www",
}

// Normalize case-folds s and checks the rules: MinLength..MaxLength
// characters from a-z, 0-9, '.', '_' and '-', starting with a letter,
// ending with a letter or digit, and not a reserved name. Upper-case ASCII
// letters are folded to lower case, so "Alice" and "alice" are one account.
func Normalize(s string) (string, error) {
	if len(s) < MinLength || len(s) > MaxLength {
		return "", invalid("must be %d to %d characters long", MinLength, MaxLength)
	}
	n := strings.ToLower(s)
	for i := range len(n) {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '.' || c == '_' || c == '-':
		default:
			return "", invalid("may contain only letters a-z, digits and . _ -")
		}
	}
	if c := n[0]; c < 'a' || c > 'z' {
		return "", invalid("must start with a letter")
	}
	if c := n[len(n)-1]; c == '.' || c == '_' || c == '-' {
		return "", invalid("must end with a letter or digit")
	}
	if slices.Contains(reserved, n) {
		return "", invalid("%q is reserved", n)
	}
	return n, nil
}
