package verify

import (
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/kt"
)

// Auditor replays the log epoch by epoch: it recomputes every epoch's
// prefix root from the previous tree and the epoch's insertion list, so it
// catches any entry that was changed or removed between epochs (which no
// single search or monitor proof can see), rebuilds the log from the
// recomputed entries and checks the log's signed checkpoints against it.
// Anyone can run it: the insertion lists reveal only VRF outputs and
// commitments.
type Auditor struct {
	state *kt.State
}

// NewAuditor returns an auditor at the start of the log.
func NewAuditor() *Auditor { return &Auditor{state: kt.NewState()} }

// ResumeAuditor continues an audit from state the auditor kept (for
// example rebuilt with kt.RebuildState from the epochs it already
// verified).
func ResumeAuditor(s *kt.State) *Auditor { return &Auditor{state: s} }

// State returns the auditor's state (to keep, or to resume from).
func (a *Auditor) State() *kt.State { return a.state }

// Size returns the number of epochs audited.
func (a *Auditor) Size() uint64 { return a.state.Log().Size() }

// Apply audits the next epoch. published is the log entry the server
// published for it (nil to skip the comparison: the checkpoint check
// covers it). Failures: an insertion of an index already in the tree, or a
// published prefix root that is not the previous tree plus the
// insertions: NotAppendOnly; an epoch out of order or a timestamp going
// back: BadProof.
func (a *Auditor) Apply(e *kt.Epoch, published *kt.LogEntry) error {
	entry, err := a.state.Apply(e)
	switch {
	case errors.Is(err, kt.ErrDuplicateIndex):
		return fail(NotAppendOnly, fmt.Sprintf("epoch %d inserts an existing index", e.Number), err)
	case err != nil:
		return fail(BadProof, fmt.Sprintf("epoch %d", e.Number), err)
	}
	if published != nil && *published != entry {
		// The state has moved on with the recomputed entry; an auditor
		// that fails stops here.
		return failf(NotAppendOnly, "epoch %d: the published entry is not the previous tree plus the epoch's insertions", e.Number)
	}
	return nil
}

// CheckCheckpoint checks that a checkpoint (already verified with
// Config.VerifyCheckpoint) is the audited log at its size: Fork if its
// root differs. A checkpoint beyond the audited size is an error (audit
// further first).
func (a *Auditor) CheckCheckpoint(c kt.Checkpoint) error {
	if c.Size == 0 || c.Size > a.Size() {
		return fmt.Errorf("verify: checkpoint of %d epochs, %d audited", c.Size, a.Size())
	}
	root, err := a.state.Log().Root(c.Size)
	if err != nil {
		return err
	}
	if root != c.Root {
		return failf(Fork, "the checkpoint of %d epochs is not the audited log", c.Size)
	}
	return nil
}

// Audit verifies a whole log from epoch 0: each epoch (with the entry the
// server published for it, if entries is not nil), then the signed
// checkpoint, which must cover exactly the epochs given. It returns the
// auditor, to continue from later.
func (c *Config) Audit(epochs []kt.Epoch, entries []kt.LogEntry, signed []byte) (*Auditor, error) {
	a := NewAuditor()
	return a, c.AuditFrom(a, epochs, entries, signed)
}

// AuditFrom continues an audit with the next epochs and checks the newest
// signed checkpoint against the result.
func (c *Config) AuditFrom(a *Auditor, epochs []kt.Epoch, entries []kt.LogEntry, signed []byte) error {
	if entries != nil && len(entries) != len(epochs) {
		return failf(BadProof, "%d epochs with %d entries", len(epochs), len(entries))
	}
	for i := range epochs {
		var pub *kt.LogEntry
		if entries != nil {
			pub = &entries[i]
		}
		if err := a.Apply(&epochs[i], pub); err != nil {
			return err
		}
	}
	cp, _, err := c.VerifyCheckpoint(signed)
	if err != nil {
		return err
	}
	if cp.Size != a.Size() {
		return failf(BadProof, "checkpoint of %d epochs after auditing %d", cp.Size, a.Size())
	}
	return a.CheckCheckpoint(cp)
}
