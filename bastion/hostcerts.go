package bastion

import (
	"fmt"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
)

// hostCerts makes the host certificates the bastion presents, for its own
// names and, when it intercepts ssh -J, for each target's name, and keeps
// each until half its lifetime has passed.
type hostCerts struct {
	authority *ca.Authority
	ttl       time.Duration
	now       func() time.Time
	m         sync.Map // principals joined by "," -> *hostCert
}

type hostCert struct {
	signer gossh.Signer
	until  time.Time
}

// signer returns a signer that presents the bastion's host key with a
// certificate for principals.
func (h *hostCerts) signer(principals []string) (gossh.Signer, error) {
	key := strings.Join(principals, ",")
	now := h.now()
	if v, ok := h.m.Load(key); ok {
		if hc := v.(*hostCert); now.Before(hc.until) {
			return hc.signer, nil
		}
	}
	hk := h.authority.Keys().HostKey
	cert, err := h.authority.SignHost(hk.PublicKey(), "bastion host "+key, principals, h.ttl)
	if err != nil {
		return nil, err
	}
	signer, err := gossh.NewCertSigner(cert, hk)
	if err != nil {
		return nil, fmt.Errorf("bastion: host certificate: %w", err)
	}
	h.m.Store(key, &hostCert{signer: signer, until: now.Add(h.ttl / 2)})
	return signer, nil
}
