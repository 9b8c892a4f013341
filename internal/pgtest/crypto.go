package pgtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// MasterKeyBase64 is the CI master key (ASCII "test-master-key-for-ci-only-32by"),
// the value of LAUNCHDB_MASTER_KEY in tests.
const MasterKeyBase64 = "dGVzdC1tYXN0ZXIta2V5LWZvci1jaS1vbmx5LTMyYnk="

// MasterKey returns the 32 bytes of MasterKeyBase64.
func MasterKey() []byte {
	key, err := base64.StdEncoding.DecodeString(MasterKeyBase64)
	if err != nil {
		panic(err)
	}
	return key
}

// Encrypt seals plaintext the way platform-api stores secrets: AES-256-GCM
// with a random 12-byte IV and no additional data, as IV || ciphertext ||
// 16-byte tag. key must be 32 bytes; anything else is a programmer error
// and panics.
func Encrypt(key []byte, plaintext string) []byte {
	iv := make([]byte, 12)
	rand.Read(iv)
	return seal(key, iv, plaintext)
}

func seal(key, iv []byte, plaintext string) []byte {
	if len(key) != 32 {
		panic(fmt.Sprintf("pgtest: AES-256 key must be 32 bytes, got %d", len(key)))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return gcm.Seal(append([]byte(nil), iv...), iv, []byte(plaintext), nil)
}
