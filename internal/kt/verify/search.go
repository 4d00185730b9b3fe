package verify

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/kt"
)

// ErrNotFound is returned when the log proves that a label has no version.
// It is not a security error.
var ErrNotFound = errors.New("verify: the label is not in the log")

// Found is a verified search result.
type Found struct {
	// Version is the version whose value this is.
	Version uint32
	// Greatest is the greatest version of the label in the newest epoch,
	// for a greatest-version search; 0 after a fixed-version search of a
	// version below the greatest, which does not establish it.
	Greatest uint32
	// Value is the value committed for Version.
	Value []byte
}

// checkLookups verifies the lookups of a search or monitor proof against
// the trusted newest epoch. versions are the versions the proof must look
// up, in order; want(v) says whether version v must be in the tree, and
// whether the proof must show it at all (a fixed-version search leaves
// the versions above its target to where its ladder stops).
//
// Order of checks, each failing with its own kind: the counts (BadProof);
// every VRF proof (BadProof); each step's commitment given exactly for the
// lookups the prefix proof says are included (BadProof); the prefix proof
// gives the epoch's prefix root (BadProof). Only then is the content of a
// valid proof judged: a version beyond the claimed greatest that the tree
// holds is HiddenVersion, a version that must be there and is not is
// BadProof.
func (c *Config) checkLookups(t *Trusted, label string, versions []uint32, want func(v uint32) (in, checked bool), steps []kt.LadderStep, prefix *kt.PrefixProof) error {
	if err := kt.CheckLabel(label); err != nil {
		return err
	}
	if len(versions) == 0 || len(steps) != len(versions) || len(prefix.Results) != len(versions) {
		return &Error{Kind: BadProof, Label: label, Reason: fmt.Sprintf("%d ladder steps and %d results for %d lookups", len(steps), len(prefix.Results), len(versions))}
	}
	idx := make([][kt.IndexSize]byte, len(versions))
	cs := make([]*[kt.HashSize]byte, len(versions))
	for i, v := range versions {
		beta, err := c.VRF.Verify(kt.VRFInput(label, v), steps[i].Proof[:])
		if err != nil {
			return &Error{Kind: BadProof, Label: label, Version: v, Reason: "VRF proof", Err: err}
		}
		idx[i] = kt.IndexFromVRF(beta)
		if (steps[i].Commitment != nil) != prefix.Results[i].Included() {
			return &Error{Kind: BadProof, Label: label, Version: v, Reason: "commitment given for a lookup that is not an inclusion, or missing for one that is"}
		}
		cs[i] = steps[i].Commitment
	}
	root, err := prefix.Evaluate(idx, cs)
	if err != nil {
		return &Error{Kind: BadProof, Label: label, Reason: "prefix proof", Err: err}
	}
	if root != t.Entry.PrefixRoot {
		return &Error{Kind: BadProof, Label: label, Reason: fmt.Sprintf("prefix proof does not give the prefix root of epoch %d", t.Entry.Epoch)}
	}
	for i, v := range versions {
		w, checked := want(v)
		if !checked {
			continue
		}
		switch in := prefix.Results[i].Included(); {
		case in && !w:
			return &Error{Kind: HiddenVersion, Label: label, Version: v, Reason: "the log holds a version beyond the greatest one claimed"}
		case !in && w:
			return &Error{Kind: BadProof, Label: label, Version: v, Reason: "a version the proof claims is in the log is not"}
		}
	}
	return nil
}

// opened checks that opening and value give the commitment the verified
// step holds for version v.
func opened(label string, v uint32, versions []uint32, steps []kt.LadderStep, opening [kt.OpeningSize]byte, value []byte) error {
	for i, x := range versions {
		if x != v {
			continue
		}
		if steps[i].Commitment == nil || kt.Commit(opening, label, v, value) != *steps[i].Commitment {
			return &Error{Kind: KeySubstituted, Label: label, Version: v, Reason: "the value served is not the one committed in the log"}
		}
		return nil
	}
	return &Error{Kind: BadProof, Label: label, Version: v, Reason: "the version is not looked up"}
}

// VerifySearch verifies a greatest-version search for label against the
// newest epoch t (from VerifyHead of the same response) and returns the
// greatest version and its value. A proof that the label has no version
// returns ErrNotFound.
func (c *Config) VerifySearch(t *Trusted, label string, p *kt.SearchProof) (*Found, error) {
	if p.Found && (p.Fixed || p.Target != p.Greatest) {
		return nil, &Error{Kind: BadProof, Label: label, Version: p.Target, Reason: fmt.Sprintf("a search for the greatest version answered with a fixed-version search of version %d", p.Target)}
	}
	return c.verifySearch(t, label, p)
}

// VerifyFixed verifies a search for one version of label: that version's
// value, and that it is at most the greatest version (so it is one the
// label's owner monitors). The answer is a fixed-version search
// (FixedLadder), whose Found.Greatest is 0: it does not establish the
// greatest version; or, for the greatest version itself, a
// greatest-version search, whose Found.Greatest is the version.
func (c *Config) VerifyFixed(t *Trusted, label string, version uint32, p *kt.SearchProof) (*Found, error) {
	if !p.Found {
		return nil, &Error{Kind: BadProof, Label: label, Version: version, Reason: "a fixed-version search answered with an absent label"}
	}
	if p.Target != version || (!p.Fixed && p.Greatest != version) {
		return nil, &Error{Kind: BadProof, Label: label, Version: version, Reason: fmt.Sprintf("answered with version %d", p.Target)}
	}
	return c.verifySearch(t, label, p)
}

func (c *Config) verifySearch(t *Trusted, label string, p *kt.SearchProof) (*Found, error) {
	if p.Found && p.Target > kt.MaxVersion {
		return nil, &Error{Kind: BadProof, Label: label, Version: p.Target, Reason: "version over MaxVersion"}
	}
	versions := p.Lookups()
	want := func(v uint32) (bool, bool) { return p.Found && v <= p.Greatest, true }
	if p.Fixed {
		// Every version up to the target must be there; above it the
		// ladder stopped at the first one that is (Lookups), which is
		// what shows the target is not beyond the greatest.
		want = func(v uint32) (bool, bool) { return true, v <= p.Target }
	}
	if err := c.checkLookups(t, label, versions, want, p.Ladder, &p.Prefix); err != nil {
		return nil, err
	}
	if !p.Found {
		return nil, ErrNotFound
	}
	if err := opened(label, p.Target, versions, p.Ladder, p.Opening, p.Value); err != nil {
		return nil, err
	}
	return &Found{Version: p.Target, Greatest: p.Greatest, Value: bytes.Clone(p.Value)}, nil
}

// Owner is what a label's owner knows about its own label.
type Owner struct {
	// Greatest is the greatest version the owner published and saw
	// sequenced into an epoch.
	Greatest uint32
	// Value returns the value the owner published as version v, or false
	// if it published no version v.
	Value func(v uint32) ([]byte, bool)
}

// MonitorResult is a verified monitor proof.
type MonitorResult struct {
	// Greatest is the greatest version in the newest epoch.
	Greatest uint32
	// Unexpected lists the versions from the monitored range the owner
	// did not publish (or published with another value), with the value
	// the log holds.
	Unexpected []Unexpected
}

// Unexpected is a version the owner did not publish.
type Unexpected struct {
	Version uint32
	Value   []byte
}

// VerifyMonitor verifies the owner's monitor proof for label, asked from
// version from, against the newest epoch t. After the proof itself
// verifies (checkLookups, and every opened value matching its commitment,
// else KeySubstituted), the owner's view is compared:
//
//   - a greatest version below own.Greatest: HiddenVersion (the log lost
//     or hides a version the owner made);
//   - any version from from to the greatest that the owner did not
//     publish, or whose value differs: UnexpectedVersion, for the first
//     such version, with the result listing all of them.
//
// The next monitor asks from Greatest+1.
func (c *Config) VerifyMonitor(t *Trusted, label string, from uint32, own Owner, p *kt.MonitorProof) (*MonitorResult, error) {
	if p.From != from || p.Greatest > kt.MaxVersion || from > p.Greatest+1 || int(p.Greatest-from+1) != len(p.Opened) {
		return nil, &Error{Kind: BadProof, Label: label, Reason: fmt.Sprintf("monitor proof opens %d versions from %d of greatest %d, asked from %d", len(p.Opened), p.From, p.Greatest, from)}
	}
	versions := p.Lookups()
	if err := c.checkLookups(t, label, versions, func(v uint32) (bool, bool) { return v <= p.Greatest, true }, p.Ladder, &p.Prefix); err != nil {
		return nil, err
	}
	for i, o := range p.Opened {
		if err := opened(label, from+uint32(i), versions, p.Ladder, o.Opening, o.Value); err != nil {
			return nil, err
		}
	}
	if p.Greatest < own.Greatest {
		return nil, &Error{Kind: HiddenVersion, Label: label, Version: own.Greatest, Reason: fmt.Sprintf("the log's greatest version is %d", p.Greatest)}
	}
	res := &MonitorResult{Greatest: p.Greatest}
	for i, o := range p.Opened {
		v := from + uint32(i)
		if want, ok := own.Value(v); !ok || !bytes.Equal(want, o.Value) {
			res.Unexpected = append(res.Unexpected, Unexpected{Version: v, Value: bytes.Clone(o.Value)})
		}
	}
	if len(res.Unexpected) > 0 {
		u := res.Unexpected[0]
		return res, &Error{Kind: UnexpectedVersion, Label: label, Version: u.Version, Value: u.Value,
			Reason: fmt.Sprintf("%d version(s) the owner did not publish", len(res.Unexpected))}
	}
	return res, nil
}
