package pgproxy

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// scramClient is the client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL
// speaks it: no channel binding, empty user name (the server uses the startup user), and
// the password used as is (no SASLprep: passwords outside ASCII may not match).
type scramClient struct {
	password        string
	nonce           string
	clientFirstBare string
	saltedPassword  []byte
	authMessage     string
	verified        bool
}

// maxSCRAMIterations bounds the work a server can ask for.
const maxSCRAMIterations = 1 << 20

func newSCRAMClient(password string) *scramClient {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return &scramClient{password: password, nonce: base64.RawStdEncoding.EncodeToString(b[:])}
}

func (c *scramClient) clientFirst() []byte {
	c.clientFirstBare = "n=,r=" + c.nonce
	return []byte("n,," + c.clientFirstBare)
}

// clientFinal answers server-first-message "r=...,s=...,i=...".
func (c *scramClient) clientFinal(serverFirst []byte) ([]byte, error) {
	attrs, err := scramAttrs(string(serverFirst))
	if err != nil {
		return nil, err
	}
	nonce, salt64, iter64 := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, errors.New("SCRAM: server nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || len(salt) == 0 {
		return nil, errors.New("SCRAM: invalid salt")
	}
	iter, err := strconv.Atoi(iter64)
	if err != nil || iter < 1 || iter > maxSCRAMIterations {
		return nil, fmt.Errorf("SCRAM: invalid iteration count %q", iter64)
	}
	c.saltedPassword, err = pbkdf2.Key(sha256.New, c.password, salt, iter, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("SCRAM: %w", err)
	}
	withoutProof := "c=biws,r=" + nonce // biws = base64("n,,")
	c.authMessage = c.clientFirstBare + "," + string(serverFirst) + "," + withoutProof
	clientKey := scramHMAC(c.saltedPassword, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	sig := scramHMAC(storedKey[:], c.authMessage)
	proof := make([]byte, len(clientKey))
	subtle.XORBytes(proof, clientKey, sig)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verifyServer checks server-final-message "v=...".
func (c *scramClient) verifyServer(serverFinal []byte) error {
	attrs, err := scramAttrs(string(serverFinal))
	if err != nil {
		return err
	}
	if e, ok := attrs["e"]; ok {
		return fmt.Errorf("SCRAM: server error %q", clean(e))
	}
	got, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil || c.saltedPassword == nil {
		return errors.New("SCRAM: invalid server signature")
	}
	serverKey := scramHMAC(c.saltedPassword, "Server Key")
	if !hmac.Equal(got, scramHMAC(serverKey, c.authMessage)) {
		return errors.New("SCRAM: server signature does not match")
	}
	c.verified = true
	return nil
}

func scramHMAC(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func scramAttrs(msg string) (map[string]string, error) {
	attrs := map[string]string{}
	for _, part := range strings.Split(msg, ",") {
		if len(part) < 2 || part[1] != '=' {
			return nil, errors.New("SCRAM: malformed message")
		}
		attrs[part[:1]] = part[2:]
	}
	return attrs, nil
}
