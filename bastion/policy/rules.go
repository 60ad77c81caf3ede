package policy

import (
	"github.com/bastionhq/bastion/internal/config"
)

// Rules is the compiled rule set. Command, SQL and output matching are
// added by the command-control work; until then rules compile to nothing.
type Rules struct {
	list []config.Rule
}

func compileRules(cfg *config.Config, _ *Policy) (*Rules, error) {
	return &Rules{list: cfg.Rules}, nil
}
