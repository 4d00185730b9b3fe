package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleyim/parley/internal/kt"
)

// The client side of the C2SP tlog-witness protocol (c2sp.org/tlog-witness):
// the sequencer POSTs each new checkpoint, with the size the witness last
// cosigned and a consistency proof from it, to <prefix>/add-checkpoint and
// gets cosignature lines back.

const (
	// maxWitnessResponse bounds a witness's answer.
	maxWitnessResponse = 64 << 10
	// maxWitnessProof is the protocol's limit on consistency proof lines.
	maxWitnessProof = 63
)

// WitnessError is a witness's refusal or a failed exchange with it.
type WitnessError struct {
	Witness string
	Status  int // HTTP status, 0 if there was no answer
	Reason  string
}

func (e *WitnessError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("witness %s: %s", e.Witness, e.Reason)
	}
	return fmt.Sprintf("witness %s: HTTP %d: %s", e.Witness, e.Status, e.Reason)
}

type witnessClient struct {
	name     string
	endpoint string
	verifier *kt.CosignatureVerifier
	http     *http.Client

	mu    sync.Mutex
	known uint64 // the size the witness last cosigned, as far as we know
}

func newWitnessClient(w Witness, origin string, timeout time.Duration) (*witnessClient, error) {
	v, err := kt.NewCosignatureVerifier(w.VKey)
	if err != nil {
		return nil, fmt.Errorf("server: witness key %q: %w", w.VKey, err)
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server: witness %s: URL %q is not an http(s) URL", v.Name(), w.URL)
	}
	if v.Name() == origin {
		return nil, fmt.Errorf("server: witness key name %q is the log's own origin", v.Name())
	}
	return &witnessClient{
		name:     v.Name(),
		endpoint: strings.TrimSuffix(w.URL, "/") + "/add-checkpoint",
		verifier: v,
		http:     &http.Client{Timeout: timeout},
	}, nil
}

// submit asks the witness to cosign the signed checkpoint of size epochs
// and returns its verified cosignature line. A 409 (the witness knows
// another size) is retried once from the size it names.
func (w *witnessClient) submit(ctx context.Context, log *kt.Log, size uint64, signed []byte) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for attempt := 0; ; attempt++ {
		old := w.known
		if old > size {
			return nil, &WitnessError{Witness: w.name, Reason: fmt.Sprintf("it cosigned a log of %d epochs, more than this log's %d", old, size)}
		}
		body := fmt.Appendf(nil, "old %d\n", old)
		if old > 0 && old < size {
			proof, err := log.ConsistencyProof(old, size)
			if err != nil {
				return nil, err
			}
			if len(proof) > maxWitnessProof {
				return nil, &WitnessError{Witness: w.name, Reason: fmt.Sprintf("consistency proof of %d hashes", len(proof))}
			}
			for _, h := range proof {
				body = append(body, base64.StdEncoding.EncodeToString(h[:])...)
				body = append(body, '\n')
			}
		}
		body = append(body, '\n')
		body = append(body, signed...)
		status, resp, err := w.post(ctx, body)
		if err != nil {
			return nil, err
		}
		switch {
		case status == http.StatusOK:
			line, err := w.cosignature(signed, resp)
			if err != nil {
				return nil, err
			}
			w.known = size
			return line, nil
		case status == http.StatusConflict && attempt == 0:
			n, err := strconv.ParseUint(strings.TrimSuffix(string(resp), "\n"), 10, 64)
			if err != nil {
				return nil, &WitnessError{Witness: w.name, Status: status, Reason: fmt.Sprintf("conflict without a size: %q", trim(resp))}
			}
			if n == old {
				// Same size, different root: the witness holds another
				// checkpoint of this size.
				return nil, &WitnessError{Witness: w.name, Status: status, Reason: fmt.Sprintf("it holds another checkpoint of %d epochs", n)}
			}
			w.known = n
		default:
			return nil, &WitnessError{Witness: w.name, Status: status, Reason: trim(resp)}
		}
	}
}

func (w *witnessClient) post(ctx context.Context, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, nil, &WitnessError{Witness: w.name, Reason: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxWitnessResponse+1))
	if err != nil {
		return 0, nil, &WitnessError{Witness: w.name, Status: resp.StatusCode, Reason: err.Error()}
	}
	if len(b) > maxWitnessResponse {
		return 0, nil, &WitnessError{Witness: w.name, Status: resp.StatusCode, Reason: "answer too large"}
	}
	return resp.StatusCode, b, nil
}

// cosignature picks the witness's own line from its answer and checks it
// is a valid cosignature of signed. Lines by other keys are ignored, as
// the protocol says.
func (w *witnessClient) cosignature(signed, resp []byte) ([]byte, error) {
	for _, l := range bytes.SplitAfter(resp, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte("— "+w.name+" ")) || !bytes.HasSuffix(l, []byte("\n")) {
			continue
		}
		merged, err := kt.AddSignatures(signed, l)
		if err != nil {
			continue
		}
		n, err := note.Open(merged, note.VerifierList(w.verifier))
		if err != nil {
			continue
		}
		for _, s := range n.Sigs {
			if s.Name == w.name && s.Hash == w.verifier.KeyHash() {
				return l, nil
			}
		}
	}
	return nil, &WitnessError{Witness: w.name, Status: http.StatusOK, Reason: "no valid cosignature by its key in the answer"}
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
