package pgtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"testing"
)

// vectorKey is bytes 0x00..0x1f, the key of the spec's test vectors.
func vectorKey() []byte {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	return key
}

func TestSealMatchesPlatformVectors(t *testing.T) {
	iv := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	tests := []struct {
		name      string
		iv        []byte
		plaintext string
		want      string
	}{
		{name: "v1-hello", iv: iv, plaintext: "hello",
			want: "000102030405060708090a0b" + "2f67ba77aa" + "2797ff353b8a046d28236dcd9d057bbb"},
		{name: "v2-empty", iv: iv, plaintext: "",
			want: "000102030405060708090a0b" + "f4c2db1dc38805a37b92171c5d0a81cc"},
		{name: "v3-other-iv", iv: bytes.Repeat([]byte{0xff}, 12), plaintext: "hello",
			want: "ffffffffffffffffffffffff" + "52e483a50f" + "72273687aae5309a6160b1f9d0d57746"},
		{name: "v4-db-password", iv: iv, plaintext: "lfQ6Zhh0sOUkBzeMcjOEfzAdOSY0JA9nhXqlXPR0pbc=",
			want: "000102030405060708090a0b2b64872d9f8daa2bfe0ec2e0f3931d20e0bcc87196011e18" +
				"7734bcb5572839dc6948df90f79140a804c61cd00d5f8d0a79d98b41293bca392b4bf9c6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(seal(vectorKey(), tt.iv, tt.plaintext)); got != tt.want {
				t.Errorf("blob: got %s, want %s", got, tt.want)
			}
		})
	}
}

// open decrypts a blob the way the manager does.
func open(t *testing.T, key, blob []byte) string {
	t.Helper()
	if len(blob) < 28 {
		t.Fatalf("blob of %d bytes: too short for IV and tag", len(blob))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := gcm.Open(nil, blob[:12], blob[12:], nil)
	if err != nil {
		t.Fatalf("decrypting: %v", err)
	}
	return string(plain)
}

func TestEncrypt(t *testing.T) {
	tests := []struct {
		name      string
		plaintext string
	}{
		{name: "jwt-secret", plaintext: "ljW+uuBmO3OWA2+HP/0XckNWzQCoRHP0xS/ppta/b6RQP3HLjhIRNE7u" +
			"yTobUFTO/D+q3gXg4CgOR9a4Fr/CZQ=="},
		{name: "quote-in-secret", plaintext: `sec"ret`},
		{name: "empty", plaintext: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob := Encrypt(MasterKey(), tt.plaintext)
			if got, want := len(blob), 12+len(tt.plaintext)+16; got != want {
				t.Errorf("blob length: got %d, want %d", got, want)
			}
			if got := open(t, MasterKey(), blob); got != tt.plaintext {
				t.Errorf("decrypted: got %q, want %q", got, tt.plaintext)
			}
			if again := Encrypt(MasterKey(), tt.plaintext); bytes.Equal(again[:12], blob[:12]) {
				t.Errorf("IV: got the same IV twice (%x), want a random one", blob[:12])
			}
		})
	}
}

func TestMasterKey(t *testing.T) {
	if got, want := string(MasterKey()), "test-master-key-for-ci-only-32by"; got != want {
		t.Errorf("MasterKey: got %q, want %q", got, want)
	}
}

func TestEncryptRejectsShortKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("Encrypt with a 16-byte key: got no panic, want one")
		}
	}()
	Encrypt(make([]byte, 16), "x")
}
