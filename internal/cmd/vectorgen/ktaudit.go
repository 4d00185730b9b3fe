package main

import (
	"encoding/binary"
	"encoding/hex"

	"google.golang.org/protobuf/proto"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
)

// ktAuditVector is an auditor's state file (docs/client.md §10.6) for the
// fixture log of kt.json's kind, encoded here independently of the client.
type ktAuditVector struct {
	Comment  string `json:"comment"`
	Epochs   int    `json:"epochs"`
	Encoding string `json:"encoding"`
}

func init() { register("ktaudit", genKTAudit) }

func genKTAudit() any {
	f, seeds := genKTFixture()
	cfg := &parleyv1.GetTransparencyConfigResponse{
		Ed25519Vkey: f.Ed25519VKey, HybridVkey: f.HybridVKey, VrfPublicKey: must(hex.DecodeString(f.VRFPublicKey)),
		WitnessVkeys: f.WitnessVKeys, WitnessThreshold: uint32(f.WitnessThreshold),
	}
	raw := must(proto.MarshalOptions{Deterministic: true}.Marshal(cfg))
	record := func(b []byte, r []byte) []byte { return append(binary.BigEndian.AppendUint32(b, uint32(len(r))), r...) }
	enc := []byte("parley-kt-audit v1\n")
	enc = record(enc, raw)
	enc = record(enc, seeds.checkpoint)
	enc = binary.BigEndian.AppendUint64(enc, uint64(len(seeds.epochs)))
	for i := range seeds.epochs {
		enc = record(enc, seeds.epochs[i])
		enc = append(enc, seeds.entries[i]...)
	}
	empty := []byte("parley-kt-audit v1\n")
	empty = record(empty, raw)
	empty = record(empty, nil)
	empty = binary.BigEndian.AppendUint64(empty, 0)
	addCorpus("client", "FuzzLoadAuditState", append(mutations(enc), empty)...)
	return []ktAuditVector{
		{Comment: "the fixture log, audited to its checkpoint", Epochs: len(seeds.epochs), Encoding: hex.EncodeToString(enc)},
		{Comment: "a new audit: no checkpoint, no epochs", Epochs: 0, Encoding: hex.EncodeToString(empty)},
	}
}
