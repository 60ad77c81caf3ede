package app

import (
	"crypto"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

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
		DBClient: cfg.CA.DBClient.Key, DBClientCert: cfg.CA.DBClient.Cert,
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
	for _, w := range keys.Warnings {
		log.Warn(w)
	}
	for _, f := range keys.Unused {
		log.Warn("key file no longer used: ca in the config names a key URI for it; whoever reads this file can still sign as the old key, so remove it", "file", f)
	}
	return keys, previous, nil
}

// MigrateStore copies the bbolt store in dataDir into the PostgreSQL
// database dsn names and verifies the copy (`bastion store migrate`). The
// seal keys that verify it are the config's when cfg is not nil (key URIs,
// ca.seal.previous), else the files in dataDir/ca.
func MigrateStore(dataDir, dsn string, cfg *config.Config) (recorder.MigrateReport, error) {
	path := filepath.Join(dataDir, StoreFile)
	if _, err := os.Stat(path); err != nil {
		return recorder.MigrateReport{}, fmt.Errorf("store migrate: no store to copy: %w", err)
	}
	var (
		keys     *ca.Keys
		previous []crypto.PublicKey
		err      error
	)
	if cfg != nil {
		c := *cfg
		c.DataDir = dataDir
		keys, previous, err = loadKeys(&c, slog.New(slog.DiscardHandler))
	} else {
		keys, err = ca.LoadKeys(dataDir, ca.KeyConfig{})
	}
	if err != nil {
		return recorder.MigrateReport{}, err
	}
	defer keys.Close()
	return recorder.Migrate(recorder.Config{Path: path, SealKey: keys.SealKey, PreviousSealKeys: previous},
		recorder.PostgresConfig{DSN: dsn, Name: "store-migrate"})
}
