package app

import (
	"crypto"
	"fmt"
	"log/slog"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/keyuri"
	"github.com/bastionhq/bastion/recorder"
)

// KeyConfig is where the config's ca section puts each CA key.
func KeyConfig(cfg *config.Config) ca.KeyConfig {
	return ca.KeyConfig{
		User: cfg.CA.User.Key, Target: cfg.CA.Target.Key, Host: cfg.CA.Host.Key,
		DB: cfg.CA.DB.Key, DBCert: cfg.CA.DB.Cert, Seal: cfg.CA.Seal.Key,
	}
}

// loadKeys opens the CA keys the config names (files in data_dir/ca, or
// key URIs), each proven to sign, and reads the previous seal keys. It
// logs where each key is, and warns about what weakens the point of an
// HSM: a PIN in the config, an old key file left beside it.
func loadKeys(cfg *config.Config, log *slog.Logger) (*ca.Keys, []crypto.PublicKey, error) {
	var previous []crypto.PublicKey
	for i, s := range cfg.CA.Seal.Previous {
		pub, err := recorder.ParseNoteVerifierKey(s)
		if err != nil {
			return nil, nil, fmt.Errorf("config: ca.seal.previous[%d]: %w", i, err)
		}
		previous = append(previous, pub)
	}
	keys, err := ca.LoadKeys(cfg.DataDir, KeyConfig(cfg))
	if err != nil {
		return nil, nil, err
	}
	for _, s := range keys.Sources {
		log.Info("ca key", "purpose", string(s.Purpose), "where", s.Where, "algorithm", s.Algorithm)
		if u, err := keyuri.Parse(s.Where); err == nil && u.Has("pin-value") {
			log.Warn("a key URI holds its PIN (pin-value): whoever reads the config can use the key; use pin-source=FILE", "purpose", string(s.Purpose))
		}
	}
	for _, f := range keys.Unused {
		log.Warn("key file no longer used: ca in the config names a key URI for it; whoever reads this file can still sign as the old key, so remove it", "file", f)
	}
	return keys, previous, nil
}
