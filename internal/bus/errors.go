package bus

import "errors"

// ErrClosed is returned by Notify and Claim once Close has been called.
// Callers branch on it to tell a shutting-down server from a failing one.
var ErrClosed = errors.New("bus: closed")
