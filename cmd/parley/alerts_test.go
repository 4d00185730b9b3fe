package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/parleyim/parley/client"
)

// TestAlertAtOpenIsShown: a key-transparency alert that the SDK's check at
// open reports while a command runs (someone published a device list this
// device did not make) is printed when the command ends, with the security
// exit code; not twice if the command already showed it.
func TestAlertAtOpenIsShown(t *testing.T) {
	alert := client.Event{Kind: client.EventKeyTransparencyAlert, From: "alice",
		Err: errors.New("security error: the log holds a version of your device list none of your devices made")}

	var stderr bytes.Buffer
	a := &app{stderr: &stderr}
	a.noteAlert(alert) // from the SDK's goroutine
	a.flushAlerts()
	if got := stderr.String(); !strings.Contains(got, "parley: ALERT: KEY TRANSPARENCY") || a.exitCode != exitSecurity {
		t.Fatalf("after an alert at open: exit %d, stderr %q", a.exitCode, got)
	}
	stderr.Reset()
	a.flushAlerts()
	if stderr.Len() != 0 {
		t.Fatalf("the alert was printed twice: %q", stderr.String())
	}

	// receive showed the same alert itself: nothing more at the end.
	var stderr2 bytes.Buffer
	b := &app{stderr: &stderr2}
	b.warnEvent(alert)
	b.noteAlert(alert)
	before := stderr2.Len()
	b.flushAlerts()
	if stderr2.Len() != before {
		t.Fatalf("an alert the command showed was printed again: %q", stderr2.String()[before:])
	}
}
