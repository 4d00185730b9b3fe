package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parleyim/parley/client"
)

// progressBar draws the progress of long work (a device link, a backup) on
// standard error, one line per phase, redrawn in place:
//
//	history   [##############                ]  4671/10000
//
// It draws only on a terminal: in a script or a log, carriage returns make
// noise, and the counts are in the command's result anyway. We draw it
// ourselves rather than take a progress-bar module: it is one line of text,
// and a dependency would bring its own terminal handling for that.
type progressBar struct {
	w     io.Writer
	on    bool // w is a terminal
	width int  // of the bar, in cells

	phase string    // being drawn; "" when no line is open
	drawn time.Time // last redraw, to redraw at most every minRedraw
}

// minRedraw limits redraws: a transfer reports every frame, and a
// terminal need not be repainted faster than people read.
const minRedraw = 100 * time.Millisecond

func (a *app) newProgressBar() *progressBar {
	p := &progressBar{w: a.stderr, width: 30}
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.on = true
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w < 60 {
			p.width = max(w-30, 10)
		}
	}
	return p
}

// update is a client.Progress callback.
func (p *progressBar) update(pr client.Progress) {
	if !p.on {
		return
	}
	done := pr.Total > 0 && pr.Done >= pr.Total
	if pr.Phase != p.phase {
		p.finish()
		p.phase = pr.Phase
	} else if !done && time.Since(p.drawn) < minRedraw {
		return
	}
	p.drawn = time.Now()
	filled := 0
	if pr.Total > 0 {
		filled = min(p.width*pr.Done/pr.Total, p.width)
	}
	if pr.Total <= 0 {
		// Nothing to measure against (a count whose end is not known
		// beforehand): just the count.
		fmt.Fprintf(p.w, "\r%-9s %d", pr.Phase, pr.Done)
		return
	}
	fmt.Fprintf(p.w, "\r%-9s [%s%s] %*d/%d", pr.Phase,
		strings.Repeat("#", filled), strings.Repeat(" ", p.width-filled),
		len(fmt.Sprint(pr.Total)), pr.Done, pr.Total)
	if done {
		fmt.Fprintln(p.w)
		p.phase = ""
	}
}

// finish ends a line left open (a phase that stopped short, or an error).
func (p *progressBar) finish() {
	if p.on && p.phase != "" {
		fmt.Fprintln(p.w)
		p.phase = ""
	}
}
