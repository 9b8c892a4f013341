package manager

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Upstream address every PostgREST config points at: the PgBouncer service on the tenant
// network. The Node manager hard-coded the same values; changing them changes every
// config file and therefore restarts every tenant on its next spawn.
const (
	upstreamHost = "pgbouncer"
	upstreamPort = "6432"
)

// ProjectSecrets are the decrypted values a PostgREST config is built from.
type ProjectSecrets struct {
	DBPassword string
	JWTSecret  string
}

// BuildPostgRESTConfig returns the PostgREST config file for a project, byte for byte what
// LaunchDB's Node manager and platform-api produce (spec section 5.1). The caller must have
// validated projectID and dbName; the secrets may contain any valid UTF-8.
func BuildPostgRESTConfig(projectID, dbName string, s ProjectSecrets) []byte {
	var b strings.Builder
	line := func(parts ...string) {
		for _, p := range parts {
			b.WriteString(p)
		}
		b.WriteByte('\n')
	}
	line("# PostgREST config for ", projectID)
	line(`db-uri = "postgres://`, projectID, "_authenticator:", encodeURIComponent(s.DBPassword),
		"@", upstreamHost, ":", upstreamPort, "/", dbName, `"`)
	line(`db-schemas = "public,storage"`)
	line(`db-anon-role = "anon"`)
	line("db-pool = 10")
	line("db-pool-timeout = 10")
	line()
	line("# Disable prepared statements for PgBouncer transaction pooling compatibility")
	line("# PgBouncer in transaction mode reuses connections across transactions")
	line(`# Prepared statements would persist and cause "already exists" errors (42P05)`)
	line("db-prepared-statements = false")
	line()
	// Only double quotes are escaped, backslashes are not: that is what the Node builder
	// does, and byte-identical output matters more than a stricter quoting here.
	line(`jwt-secret = "`, strings.ReplaceAll(s.JWTSecret, `"`, `\"`), `"`)
	line(`jwt-aud = "authenticated"`)
	line()
	line("max-rows = 1000")
	line(`db-tx-end = "commit"`)
	return []byte(b.String())
}

// ConfigHash returns the first 16 hex digits of the SHA-256 of a config file, the
// configHash of the spawn response and the manager's "has the config changed?" test.
func ConfigHash(config []byte) string {
	sum := sha256.Sum256(config)
	return hex.EncodeToString(sum[:])[:16]
}

// encodeURIComponent percent-encodes s exactly like JavaScript's encodeURIComponent:
// A-Z a-z 0-9 and - _ . ! ~ * ' ( ) stay, every other byte of the UTF-8 encoding becomes
// %XX with upper-case hex. url.QueryEscape differs (space as +, escapes ! ' ( ) *).
func encodeURIComponent(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if uriUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func uriUnreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()", c) >= 0
}
