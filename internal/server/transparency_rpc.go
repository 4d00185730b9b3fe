package server

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/username"
)

// TransparencyService (docs/server.md §5.8): every call is public and
// charged to the per-IP key-transparency limit (KTIPRate). Answers are
// built from the published view (transparency.go): the newest epoch whose
// checkpoint has the cosignatures the witness policy asks for.

var (
	errKTUnavailable = errors.New("the key-transparency log has no published epoch yet; retry in a few seconds")
	errKTOff         = errors.New("this server's store keeps no key-transparency log")
)

// ktBehind is a request for consistency from a checkpoint newer than the
// one this node serves (another node published it first).
type ktBehind struct{ have, want uint64 }

func (e *ktBehind) Error() string {
	return fmt.Sprintf("this node serves the log of %d epochs, older than the checkpoint of %d you hold; retry shortly", e.have, e.want)
}

type transparencyService struct{ s *Server }

// view returns the published view.
func (s *Server) ktView() (*ktView, error) {
	if s.kt == nil {
		return nil, errKTOff
	}
	v := s.kt.view.Load()
	if v == nil {
		return nil, errKTUnavailable
	}
	return v, nil
}

// head encodes the view's head with consistency from fromSize.
func (v *ktView) head(fromSize uint64) ([]byte, error) {
	if fromSize > v.size {
		return nil, &ktBehind{have: v.size, want: fromSize}
	}
	h, err := v.state.Head(v.size, v.note, fromSize)
	if err != nil {
		return nil, err
	}
	return h.Marshal()
}

// search builds the greatest-version search proof for name in the view,
// and returns it with the value it proves (nil for an absent label).
func (s *Server) ktSearch(ctx context.Context, v *ktView, name string) (proof, value []byte, err error) {
	p := s.kt.prover(v)
	var sp *kt.SearchProof
	g, err := s.kt.st.KTGreatest(ctx, name, v.size)
	switch {
	case errors.Is(err, store.ErrNotFound):
		sp, err = p.Absent(name)
	case err != nil:
		return nil, nil, err
	default:
		sp, err = p.Search(name, g.Version, g.Opening, g.Value)
		value = g.Value
	}
	if err != nil {
		return nil, nil, err
	}
	proof, err = sp.Marshal()
	return proof, value, err
}

func (t *transparencyService) GetConfig(ctx context.Context, req *connect.Request[parleyv1.GetTransparencyConfigRequest]) (*connect.Response[parleyv1.GetTransparencyConfigResponse], error) {
	s := t.s
	if s.kt == nil {
		return nil, errKTOff
	}
	resp := &parleyv1.GetTransparencyConfigResponse{
		Origin:           s.kt.signer.Origin(),
		Ed25519Vkey:      s.kt.signer.Ed25519VerifierKey(),
		HybridVkey:       s.kt.signer.HybridVerifierKey(),
		VrfPublicKey:     s.kt.vrf.Public().Bytes(),
		WitnessThreshold: uint32(s.kt.self.Witnesses.Threshold),
		EpochIntervalMs:  uint64(s.cfg.KTEpochInterval.Milliseconds()),
	}
	for _, w := range s.cfg.KTWitnesses {
		resp.WitnessVkeys = append(resp.WitnessVkeys, w.VKey)
	}
	return connect.NewResponse(resp), nil
}

func (t *transparencyService) GetHead(ctx context.Context, req *connect.Request[parleyv1.GetHeadRequest]) (*connect.Response[parleyv1.GetHeadResponse], error) {
	v, err := t.s.ktView()
	if err != nil {
		return nil, err
	}
	h, err := v.head(req.Msg.FromSize)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&parleyv1.GetHeadResponse{Head: h}), nil
}

func (t *transparencyService) Search(ctx context.Context, req *connect.Request[parleyv1.SearchRequest]) (*connect.Response[parleyv1.SearchResponse], error) {
	s, m := t.s, req.Msg
	name, err := username.Normalize(m.Username)
	if err != nil {
		return nil, err
	}
	v, err := s.ktView()
	if err != nil {
		return nil, err
	}
	h, err := v.head(m.FromSize)
	if err != nil {
		return nil, err
	}
	resp := &parleyv1.SearchResponse{Head: h}
	if m.FixedVersionPlusOne == 0 {
		if resp.Proof, _, err = s.ktSearch(ctx, v, name); err != nil {
			return nil, err
		}
		return connect.NewResponse(resp), nil
	}
	version := m.FixedVersionPlusOne - 1
	g, err := s.kt.st.KTGreatest(ctx, name, v.size)
	if err != nil {
		return nil, fmt.Errorf("account %q has no version in the log: %w", name, err)
	}
	if version > g.Version {
		return nil, fmt.Errorf("account %q: KT version %d is not in the log (the greatest is %d): %w", name, version, g.Version, store.ErrNotFound)
	}
	vals, err := s.kt.st.KTValues(ctx, name, version, version, v.size)
	if err != nil {
		return nil, err
	}
	if len(vals) != 1 {
		return nil, fmt.Errorf("server: %q version %d below the greatest %d is not stored: %w", name, version, g.Version, kt.ErrInconsistent)
	}
	sp, err := s.kt.prover(v).Fixed(name, g.Version, version, vals[0].Opening, vals[0].Value)
	if err != nil {
		return nil, err
	}
	if resp.Proof, err = sp.Marshal(); err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (t *transparencyService) Monitor(ctx context.Context, req *connect.Request[parleyv1.MonitorRequest]) (*connect.Response[parleyv1.MonitorResponse], error) {
	s, m := t.s, req.Msg
	name, err := username.Normalize(m.Username)
	if err != nil {
		return nil, err
	}
	v, err := s.ktView()
	if err != nil {
		return nil, err
	}
	h, err := v.head(m.FromSize)
	if err != nil {
		return nil, err
	}
	g, err := s.kt.st.KTGreatest(ctx, name, v.size)
	if err != nil {
		return nil, fmt.Errorf("account %q has no version in the log yet: %w", name, err)
	}
	from := m.FromVersion
	switch {
	case from > g.Version+1:
		return nil, badRequest("monitoring from KT version %d, but the greatest version of %q in the log is %d", from, name, g.Version)
	case g.Version+1-from > kt.MaxMonitorVersions:
		return nil, badRequest("%d versions of %q from %d: one monitor proof opens at most %d; monitor from %d and fetch the earlier versions with fixed-version searches",
			g.Version+1-from, name, from, kt.MaxMonitorVersions, g.Version+1-kt.MaxMonitorVersions)
	}
	var opened []kt.Opened
	if from <= g.Version {
		vals, err := s.kt.st.KTValues(ctx, name, from, g.Version, v.size)
		if err != nil {
			return nil, err
		}
		if len(vals) != int(g.Version-from+1) {
			return nil, fmt.Errorf("server: %q versions %d..%d: %d stored: %w", name, from, g.Version, len(vals), kt.ErrInconsistent)
		}
		for _, val := range vals {
			opened = append(opened, kt.Opened{Opening: val.Opening, Value: val.Value})
		}
	}
	mp, err := s.kt.prover(v).Monitor(name, g.Version, from, opened)
	if err != nil {
		return nil, err
	}
	proof, err := mp.Marshal()
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&parleyv1.MonitorResponse{Head: h, Proof: proof}), nil
}

func (t *transparencyService) GetEpochs(ctx context.Context, req *connect.Request[parleyv1.GetEpochsRequest]) (*connect.Response[parleyv1.GetEpochsResponse], error) {
	s, m := t.s, req.Msg
	v, err := s.ktView()
	if err != nil {
		return nil, err
	}
	resp := &parleyv1.GetEpochsResponse{Checkpoint: v.note}
	if m.From >= v.size {
		return connect.NewResponse(resp), nil
	}
	limit := uint64(MaxEpochsPerCall)
	if m.Limit > 0 {
		limit = min(limit, uint64(m.Limit))
	}
	limit = min(limit, v.size-m.From)
	es, err := s.kt.st.KTEpochs(ctx, m.From, int(limit))
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		resp.Epochs = append(resp.Epochs, e.Epoch)
		resp.Entries = append(resp.Entries, e.Entry)
	}
	return connect.NewResponse(resp), nil
}
