package primitives

import (
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
)

// Sizes of the ML-KEM encodings (FIPS 203 Table 3).
const (
	MLKEMSeedSize            = mlkem.SeedSize
	MLKEMSharedKeySize       = mlkem.SharedKeySize
	MLKEM768PublicKeySize    = mlkem.EncapsulationKeySize768
	MLKEM768CiphertextSize   = mlkem.CiphertextSize768
	MLKEM1024PublicKeySize   = mlkem.EncapsulationKeySize1024
	MLKEM1024CiphertextSize  = mlkem.CiphertextSize1024
	mlkemEncapsulationRandom = 32
)

// MLKEM768PrivateKey is an ML-KEM-768 decapsulation key, used by the PQ
// ratchet.
type MLKEM768PrivateKey struct{ dk *mlkem.DecapsulationKey768 }

// MLKEM768PublicKey is an ML-KEM-768 encapsulation key.
type MLKEM768PublicKey struct{ ek *mlkem.EncapsulationKey768 }

// MLKEM1024PrivateKey is an ML-KEM-1024 decapsulation key, used for PQ
// prekeys.
type MLKEM1024PrivateKey struct{ dk *mlkem.DecapsulationKey1024 }

// MLKEM1024PublicKey is an ML-KEM-1024 encapsulation key.
type MLKEM1024PublicKey struct{ ek *mlkem.EncapsulationKey1024 }

// GenerateMLKEM768 returns a fresh ML-KEM-768 key pair.
func GenerateMLKEM768() *MLKEM768PrivateKey {
	var seed [MLKEMSeedSize]byte
	Random(seed[:])
	k, err := NewMLKEM768PrivateKey(seed[:])
	if err != nil {
		panic("parley: internal error: ML-KEM-768 key generation: " + err.Error())
	}
	return k
}

// NewMLKEM768PrivateKey expands a 64-byte seed (FIPS 203 "d || z").
func NewMLKEM768PrivateKey(seed []byte) (*MLKEM768PrivateKey, error) {
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &MLKEM768PrivateKey{dk: dk}, nil
}

// NewMLKEM768PublicKey parses an encapsulation key, including the FIPS 203
// modulus check.
func NewMLKEM768PublicKey(b []byte) (*MLKEM768PublicKey, error) {
	ek, err := mlkem.NewEncapsulationKey768(b)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &MLKEM768PublicKey{ek: ek}, nil
}

// Seed returns the 64-byte seed from which the key expands.
func (k *MLKEM768PrivateKey) Seed() []byte { return k.dk.Bytes() }

// Public returns the encapsulation key.
func (k *MLKEM768PrivateKey) Public() *MLKEM768PublicKey {
	return &MLKEM768PublicKey{ek: k.dk.EncapsulationKey()}
}

// Decapsulate recovers the shared secret. A ciphertext of the wrong size is
// ErrDecrypt; a well-sized wrong ciphertext yields an unrelated secret
// (implicit rejection), which the caller's AEAD then refuses.
func (k *MLKEM768PrivateKey) Decapsulate(ct []byte) ([]byte, error) {
	ss, err := k.dk.Decapsulate(ct)
	if err != nil {
		return nil, ErrDecrypt
	}
	return ss, nil
}

// Bytes returns the encapsulation key encoding.
func (k *MLKEM768PublicKey) Bytes() []byte { return k.ek.Bytes() }

// Encapsulate returns a fresh shared secret and its ciphertext.
func (k *MLKEM768PublicKey) Encapsulate() (sharedKey, ciphertext []byte) {
	if deterministicMode() {
		var m [mlkemEncapsulationRandom]byte
		Random(m[:])
		ss, ct, err := mlkemtest.Encapsulate768(k.ek, m[:])
		if err != nil {
			panic("parley: internal error: ML-KEM-768 encapsulation: " + err.Error())
		}
		return ss, ct
	}
	return k.ek.Encapsulate()
}

// GenerateMLKEM1024 returns a fresh ML-KEM-1024 key pair.
func GenerateMLKEM1024() *MLKEM1024PrivateKey {
	var seed [MLKEMSeedSize]byte
	Random(seed[:])
	k, err := NewMLKEM1024PrivateKey(seed[:])
	if err != nil {
		panic("parley: internal error: ML-KEM-1024 key generation: " + err.Error())
	}
	return k
}

// NewMLKEM1024PrivateKey expands a 64-byte seed (FIPS 203 "d || z").
func NewMLKEM1024PrivateKey(seed []byte) (*MLKEM1024PrivateKey, error) {
	dk, err := mlkem.NewDecapsulationKey1024(seed)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &MLKEM1024PrivateKey{dk: dk}, nil
}

// NewMLKEM1024PublicKey parses an encapsulation key, including the FIPS 203
// modulus check.
func NewMLKEM1024PublicKey(b []byte) (*MLKEM1024PublicKey, error) {
	ek, err := mlkem.NewEncapsulationKey1024(b)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &MLKEM1024PublicKey{ek: ek}, nil
}

// Seed returns the 64-byte seed from which the key expands.
func (k *MLKEM1024PrivateKey) Seed() []byte { return k.dk.Bytes() }

// Public returns the encapsulation key.
func (k *MLKEM1024PrivateKey) Public() *MLKEM1024PublicKey {
	return &MLKEM1024PublicKey{ek: k.dk.EncapsulationKey()}
}

// Decapsulate recovers the shared secret (see MLKEM768PrivateKey.Decapsulate).
func (k *MLKEM1024PrivateKey) Decapsulate(ct []byte) ([]byte, error) {
	ss, err := k.dk.Decapsulate(ct)
	if err != nil {
		return nil, ErrDecrypt
	}
	return ss, nil
}

// Bytes returns the encapsulation key encoding.
func (k *MLKEM1024PublicKey) Bytes() []byte { return k.ek.Bytes() }

// Encapsulate returns a fresh shared secret and its ciphertext.
func (k *MLKEM1024PublicKey) Encapsulate() (sharedKey, ciphertext []byte) {
	if deterministicMode() {
		var m [mlkemEncapsulationRandom]byte
		Random(m[:])
		ss, ct, err := mlkemtest.Encapsulate1024(k.ek, m[:])
		if err != nil {
			panic("parley: internal error: ML-KEM-1024 encapsulation: " + err.Error())
		}
		return ss, ct
	}
	return k.ek.Encapsulate()
}
