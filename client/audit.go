package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
)

// Auditing (docs/transparency.md §9, docs/client.md §10.6): anyone can replay
// a log's epochs and check that each is the previous tree plus its
// insertions, and that the log's signed checkpoint is the replayed log.

// auditPage is how many epochs one GetEpochs call asks for.
const auditPage = 1000

// auditMagic starts an audit state file.
const auditMagic = "parley-kt-audit v1\n"

// maxAuditRecord bounds one record of an audit state file.
const maxAuditRecord = 64 << 20

// ErrAuditState reports an unreadable audit state file.
var ErrAuditState = errors.New("client: audit state file is malformed")

// AuditState is an auditor's position: the log configuration it audits
// against and every epoch it verified, from which it resumes.
type AuditState struct {
	Config  *LogConfig
	epochs  []kt.Epoch
	entries []kt.LogEntry
	// Checkpoint is the newest signed checkpoint checked against the
	// replayed log.
	Checkpoint []byte
	auditor    *verify.Auditor
}

// Size is the number of epochs audited.
func (s *AuditState) Size() uint64 { return uint64(len(s.epochs)) }

// AuditProgress is reported after each page of epochs.
type AuditProgress struct {
	Audited, Total uint64
}

// AuditLog audits the log of server from the start (st nil) or from where
// st left off, and returns the new state. lc pins the log's keys for a new
// audit (nil: the server's GetConfig, trust on first use); a resumed audit
// keeps the keys of its state, so a server that changed them fails the
// checkpoint's signatures. Failures of the log are *SecurityError wrapping a
// *verify.Error (NotAppendOnly, Fork, BadSignature...).
func AuditLog(ctx context.Context, server string, hc *http.Client, lc *LogConfig, st *AuditState, progress func(AuditProgress)) (*AuditState, error) {
	server, err := NormalizeServerURL(server)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	if progress == nil {
		progress = func(AuditProgress) {}
	}
	if st == nil {
		if lc == nil {
			if lc, err = FetchLogConfig(ctx, server, hc); err != nil {
				return nil, err
			}
		}
		st = &AuditState{Config: lc, auditor: verify.NewAuditor()}
	}
	cfg, err := st.Config.Verifier()
	if err != nil {
		return nil, err
	}
	const what = "key-transparency log"
	tc := parleyv1connect.NewTransparencyServiceClient(hc, server)
	for {
		resp, err := tc.GetEpochs(ctx, connect.NewRequest(&parleyv1.GetEpochsRequest{From: st.Size(), Limit: auditPage}))
		if err != nil {
			return st, wrapRPC("fetching epochs", err)
		}
		m := resp.Msg
		if len(m.Epochs) != len(m.Entries) {
			return st, securityError(what, &verify.Error{Kind: verify.BadProof, Reason: fmt.Sprintf("%d epochs with %d entries", len(m.Epochs), len(m.Entries))})
		}
		cp, _, err := cfg.VerifyCheckpoint(m.Checkpoint)
		if err != nil {
			return st, securityError(what, err)
		}
		for i := range m.Epochs {
			e, err := kt.UnmarshalEpoch(m.Epochs[i])
			if err != nil {
				return st, securityError(what, &verify.Error{Kind: verify.BadProof, Reason: "epoch", Err: err})
			}
			le, err := kt.UnmarshalLogEntry(m.Entries[i])
			if err != nil {
				return st, securityError(what, &verify.Error{Kind: verify.BadProof, Reason: "log entry", Err: err})
			}
			if e.Number != st.Size() {
				return st, securityError(what, &verify.Error{Kind: verify.BadProof, Reason: fmt.Sprintf("epoch %d served as epoch %d", e.Number, st.Size())})
			}
			if err := st.auditor.Apply(e, le); err != nil {
				return st, securityError(what, err)
			}
			st.epochs, st.entries = append(st.epochs, *e), append(st.entries, *le)
		}
		progress(AuditProgress{Audited: st.Size(), Total: max(cp.Size, st.Size())})
		if cp.Size <= st.Size() {
			if err := st.auditor.CheckCheckpoint(cp); err != nil {
				return st, securityError(what, err)
			}
			if st.Checkpoint != nil {
				// The newer checkpoint must extend the one audited before:
				// implied by the replay (both are roots of one recomputed
				// log), checked here against the note kept.
				old, _, err := cfg.VerifyCheckpoint(st.Checkpoint)
				if err == nil {
					err = st.auditor.CheckCheckpoint(old)
				}
				if err != nil {
					return st, securityError(what, err)
				}
			}
			st.Checkpoint = bytes.Clone(m.Checkpoint)
			return st, nil
		}
		if len(m.Epochs) == 0 {
			return st, securityError(what, &verify.Error{Kind: verify.BadProof,
				Reason: fmt.Sprintf("the checkpoint covers %d epochs, the server serves %d", cp.Size, st.Size())})
		}
	}
}

// Marshal writes the state (docs/client.md §10.6):
//
//	"parley-kt-audit v1\n"
//	u32 length || the log configuration (GetTransparencyConfigResponse, protobuf)
//	u32 length || the newest checkpoint note checked (empty before the first)
//	u64 epoch count, then per epoch: u32 length || kt.Epoch || kt.LogEntry (49)
func (s *AuditState) Marshal(w io.Writer) error {
	bw := bufio.NewWriter(w)
	cfg, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.Config.proto())
	if err != nil {
		return err
	}
	bw.WriteString(auditMagic)
	writeRecord(bw, cfg)
	writeRecord(bw, s.Checkpoint)
	bw.Write(binary.BigEndian.AppendUint64(nil, s.Size()))
	for i := range s.epochs {
		e, err := s.epochs[i].Marshal()
		if err != nil {
			return err
		}
		writeRecord(bw, e)
		bw.Write(s.entries[i].Marshal())
	}
	return bw.Flush()
}

func writeRecord(w *bufio.Writer, b []byte) {
	w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	w.Write(b)
}

// LoadAuditState reads a state written by Marshal and rebuilds the
// auditor from its epochs (re-verifying that every stored entry is the
// replay's).
func LoadAuditState(r io.Reader) (*AuditState, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(auditMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != auditMagic {
		return nil, fmt.Errorf("%w: not a parley audit state", ErrAuditState)
	}
	record := func() ([]byte, error) {
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			return nil, fmt.Errorf("%w: truncated", ErrAuditState)
		}
		l := binary.BigEndian.Uint32(n[:])
		if l > maxAuditRecord {
			return nil, fmt.Errorf("%w: record of %d bytes", ErrAuditState, l)
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("%w: truncated", ErrAuditState)
		}
		return b, nil
	}
	cfgRaw, err := record()
	if err != nil {
		return nil, err
	}
	var p parleyv1.GetTransparencyConfigResponse
	if err := proto.Unmarshal(cfgRaw, &p); err != nil {
		return nil, fmt.Errorf("%w: configuration", ErrAuditState)
	}
	// One encoding per state: the configuration as Marshal writes it.
	if again, err := (proto.MarshalOptions{Deterministic: true}).Marshal(&p); err != nil || !bytes.Equal(again, cfgRaw) {
		return nil, fmt.Errorf("%w: configuration not in canonical encoding", ErrAuditState)
	}
	st := &AuditState{Config: logConfigFromProto(&p)}
	if _, err := st.Config.Verifier(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuditState, err)
	}
	if st.Checkpoint, err = record(); err != nil {
		return nil, err
	}
	if len(st.Checkpoint) == 0 {
		st.Checkpoint = nil
	}
	var cnt [8]byte
	if _, err := io.ReadFull(br, cnt[:]); err != nil {
		return nil, fmt.Errorf("%w: truncated", ErrAuditState)
	}
	n := binary.BigEndian.Uint64(cnt[:])
	for i := uint64(0); i < n; i++ {
		raw, err := record()
		if err != nil {
			return nil, err
		}
		e, err := kt.UnmarshalEpoch(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: epoch %d: %v", ErrAuditState, i, err)
		}
		var le [kt.LogEntrySize]byte
		if _, err := io.ReadFull(br, le[:]); err != nil {
			return nil, fmt.Errorf("%w: truncated", ErrAuditState)
		}
		entry, err := kt.UnmarshalLogEntry(le[:])
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrAuditState, i, err)
		}
		st.epochs, st.entries = append(st.epochs, *e), append(st.entries, *entry)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing bytes", ErrAuditState)
	}
	state, err := kt.RebuildState(st.epochs, st.entries)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored epochs do not replay: %v", ErrAuditState, err)
	}
	st.auditor = verify.ResumeAuditor(state)
	return st, nil
}
