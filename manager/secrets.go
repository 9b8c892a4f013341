package manager

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Layout of an encrypted secret as platform-api stores it in platform.secrets.encrypted_value:
// IV (12 bytes) || ciphertext || GCM tag (16 bytes), no associated data.
const (
	gcmNonceSize = 12
	gcmTagSize   = 16
)

// MasterKey is the AES-256-GCM key platform-api encrypts project secrets with.
type MasterKey struct {
	aead cipher.AEAD
}

// ParseMasterKey decodes LAUNCHDB_MASTER_KEY as leniently as Node's base64 decoder does for
// the forms operators actually produce (spec 4.2): surrounding whitespace and quotes are
// trimmed, padding is optional, and the standard or URL-safe alphabet is accepted. The result
// must be exactly 32 bytes. The error never contains the key.
func ParseMasterKey(s string) (MasterKey, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	raw, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return MasterKey{}, errors.New("not valid base64 (standard or URL-safe alphabet)")
	}
	if len(raw) != 32 {
		return MasterKey{}, fmt.Errorf("decodes to %d bytes, want 32", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return MasterKey{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return MasterKey{}, err
	}
	return MasterKey{aead: aead}, nil
}

// Decrypt opens a secret blob and returns its UTF-8 plaintext.
//
// A 28-byte blob (empty plaintext) is accepted, as platform-api accepts it; whether an empty
// secret is usable is the caller's decision (the Node manager refused such blobs at this
// layer, see spawn). Plaintext that is not valid UTF-8 is refused: Node would have replaced
// the bad bytes with U+FFFD and produced a different config file and hash.
func (k MasterKey) Decrypt(blob []byte) (string, error) {
	if k.aead == nil {
		return "", errors.New("no master key")
	}
	if len(blob) < gcmNonceSize+gcmTagSize {
		return "", fmt.Errorf("encrypted data too short: %d bytes", len(blob))
	}
	plain, err := k.aead.Open(nil, blob[:gcmNonceSize], blob[gcmNonceSize:], nil)
	if err != nil {
		return "", errors.New("authentication failed (wrong key or corrupted data)")
	}
	if !utf8.Valid(plain) {
		return "", errors.New("plaintext is not valid UTF-8")
	}
	return string(plain), nil
}

// seal encrypts plaintext with the given 12-byte IV in platform-api's format. The manager
// never encrypts; tests use it to build blobs.
func (k MasterKey) seal(iv []byte, plaintext string) []byte {
	out := append([]byte(nil), iv...)
	return k.aead.Seal(out, iv, []byte(plaintext), nil)
}
