// Package provision implements the cryptographic core of linking a new
// device to an account, as specified in docs/protocol.md §9 (drafted in
// docs/drafts/provisioning.md): the new device's offer, its mailbox address,
// code, QR payload and confirmation string, and the HPKE-sealed transfer of
// the account key, contacts, settings and message history from an existing
// device. It does no networking and no storage.
//
// The flow, with N the new device and E an existing one:
//
//  1. N: NewOffer → shows Offer.Code (or Offer.QR) and Offer.Confirmation,
//     uploads Offer.Marshal to the server's mailbox at Offer.Address, and
//     keeps the OfferSecret in memory only.
//  2. E: ParseCode (a typo fails here, before any network call) → fetches
//     the offer bytes from the mailbox → VerifyOffer (the address must be the
//     offer's hash, so the server cannot substitute it; the offer must be
//     fresh) → shows Offer.Confirmation and the device name for the person
//     to compare with N's screen.
//  3. E: NewSender → Sender.Account, Sender.Contacts…, Sender.History…,
//     Sender.End, each a frame posted to the mailbox in order.
//  4. N: NewReceiver → Receiver.Open on each frame in order →
//     Receiver.Finish.
//
// Failures that mean someone lied (a substituted offer, a frame that does
// not decrypt, frames out of order, a device list that does not add this
// device, an account key that does not sign the list) match ErrSecurity
// (and identity.ErrSecurity); malformed bytes match wire.ErrMalformed.
package provision
