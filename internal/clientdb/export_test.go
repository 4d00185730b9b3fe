package clientdb

import (
	"context"
	"encoding/binary"
	"testing"
	"time"
)

// TestExportMessagesSkipsNothing: more messages than one page, all with the
// same timestamp, are exported exactly once each — the case where paging by
// time would lose some.
func TestExportMessagesSkipsNothing(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	sent := time.UnixMilli(1_795_000_000_000)
	const n = MaxHistory + 500
	if err := db.Update(ctx, func(tx *Tx) error {
		for i := range n {
			m := &Message{Conversation: "bob", Sender: "bob", Sent: sent, Received: sent, Body: []byte("x"), State: StateReceived}
			binary.BigEndian.PutUint32(m.ID[:], uint32(i))
			if _, err := tx.PutMessage(m); err != nil {
				return err
			}
		}
		// Another conversation is not exported with bob's.
		_, err := tx.PutMessage(&Message{ID: [16]byte{0xff}, Conversation: "carol", Sender: "carol", Sent: sent, Received: sent, State: StateReceived})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	seen := map[[16]byte]bool{}
	var after int64
	for pages := 0; ; pages++ {
		ms, last, err := db.ExportMessages(ctx, "bob", after, MaxHistory)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			break
		}
		if pages > 3 {
			t.Fatal("export does not end")
		}
		for _, m := range ms {
			if seen[m.ID] || m.Conversation != "bob" {
				t.Fatalf("message %x exported twice or under %q", m.ID[:4], m.Conversation)
			}
			seen[m.ID] = true
		}
		after = last
	}
	if len(seen) != n {
		t.Fatalf("exported %d of %d messages", len(seen), n)
	}
}
