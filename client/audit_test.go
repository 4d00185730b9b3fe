package client

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
)

type ktAuditVector struct {
	Comment  string `json:"comment"`
	Epochs   int    `json:"epochs"`
	Encoding string `json:"encoding"`
}

// TestAuditStateVectors: the state files vectorgen encodes on its own load,
// replay (the fixture log's epochs rebuild to its entries) and re-encode
// byte for byte; every strict prefix and a flipped epoch byte are refused
// with ErrAuditState.
func TestAuditStateVectors(t *testing.T) {
	var vs []ktAuditVector
	vectortest.Load(t, "ktaudit", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		enc := vectortest.Hex(t, v.Encoding)
		st, err := LoadAuditState(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("%s: %v", v.Comment, err)
		}
		if st.Size() != uint64(v.Epochs) || st.auditor.Size() != uint64(v.Epochs) {
			t.Fatalf("%s: %d epochs (auditor %d), want %d", v.Comment, st.Size(), st.auditor.Size(), v.Epochs)
		}
		var out bytes.Buffer
		if err := st.Marshal(&out); err != nil || !bytes.Equal(out.Bytes(), enc) {
			t.Fatalf("%s: re-encoding differs (%v)", v.Comment, err)
		}
		for i := 0; i < len(enc); i += max(1, len(enc)/200) {
			if _, err := LoadAuditState(bytes.NewReader(enc[:i])); !errors.Is(err, ErrAuditState) {
				t.Fatalf("%s: prefix %d: %v", v.Comment, i, err)
			}
		}
		if v.Epochs > 0 {
			bad := bytes.Clone(enc)
			bad[len(bad)-60] ^= 1 // inside the last epoch's leaves
			if _, err := LoadAuditState(bytes.NewReader(bad)); !errors.Is(err, ErrAuditState) {
				t.Fatalf("%s: a changed epoch: %v", v.Comment, err)
			}
		}
	}
}

func FuzzLoadAuditState(f *testing.F) {
	vectortest.Corpus(f, "FuzzLoadAuditState")
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := LoadAuditState(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrAuditState) {
				t.Fatalf("error not matching ErrAuditState: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := st.Marshal(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("accepted state does not re-encode identically: %v", err)
		}
	})
}

func TestFuzzCorpusLoadAuditState(t *testing.T) { vectortest.Corpus(t, "FuzzLoadAuditState") }
