package client

import (
	"context"
	"testing"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
)

// BenchmarkLookupVerify measures what key transparency adds to a device-list
// lookup on the client, on a real response of the test server: "client" is
// everything lookup checks once the response is in (head, search proof,
// kt_value, the logged device list's hybrid signature and shape, the served
// list); "floor" is the library's VerifyHead + VerifySearch alone on the
// same response, in the same run. Report client/floor.
func BenchmarkLookupVerify(b *testing.B) {
	ts := newTestServer(b)
	alice, bob := ts.register(b, "alice"), ts.register(b, "bob")
	_ = bob
	ctx := context.Background()
	var resp *parleyv1.GetDeviceListResponse
	for {
		r, err := alice.authedGet(ctx, &parleyv1.GetDeviceListRequest{Username: "bob"})
		if err != nil {
			b.Fatal(err)
		}
		if len(r.KtValue) > 0 {
			resp = r
			break
		}
	}
	b.Run("floor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h, err := kt.UnmarshalHead(resp.KtHead)
			if err != nil {
				b.Fatal(err)
			}
			t, err := alice.kt.VerifyHead(nil, h, alice.now())
			if err != nil {
				b.Fatal(err)
			}
			p, err := kt.UnmarshalSearchProof(resp.KtSearch)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := alice.kt.VerifySearch(t, "bob", p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("client", func(b *testing.B) {
		b.ReportAllocs()
		alice.trusted = nil
		for b.Loop() {
			t, err := alice.verifyHead("bench", resp.KtHead)
			if err != nil {
				b.Fatal(err)
			}
			p, err := kt.UnmarshalSearchProof(resp.KtSearch)
			if err != nil {
				b.Fatal(err)
			}
			var found *verify.Found
			if found, err = alice.kt.VerifySearch(t, "bob", p); err != nil {
				b.Fatal(err)
			}
			if _, err := alice.servedList(ctx, "bob", found, resp, alice.authedGet); err != nil {
				b.Fatal(err)
			}
		}
	})
}
