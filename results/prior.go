package results

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/reachscan/reach/export"
)

// Prior is what the runs a resumed scan continues have committed: their
// parts (from the checkpoint) and the pairs those parts hold. A probe the
// resumed run repeats (the checkpoint lags the sender by the reply window)
// finds its pair here and is not written twice.
type Prior struct {
	Parts []Part
	pairs map[uint64]struct{}
}

// LoadPrior reads the parts a checkpoint records (nil: none). A part that
// is missing or changed is an error: without it the resumed run could not
// tell which pairs are already on disk.
func LoadPrior(raw json.RawMessage) (*Prior, error) {
	p := &Prior{pairs: map[uint64]struct{}{}}
	if len(raw) == 0 || string(raw) == "null" {
		return p, nil
	}
	if err := json.Unmarshal(raw, &p.Parts); err != nil {
		return nil, fmt.Errorf("checkpoint outputs: %w", err)
	}
	for _, part := range p.Parts {
		if _, err := os.Stat(part.Path); err != nil {
			return nil, fmt.Errorf("checkpoint names %s, committed by the run it resumes: %w (put it back, or start a new scan)", part.Path, err)
		}
		rows, err := export.ReadFile(part.Path)
		if err != nil {
			return nil, fmt.Errorf("checkpoint part: %w", err)
		}
		if int64(len(rows)) != part.Rows {
			return nil, fmt.Errorf("checkpoint part %s holds %d rows, not the %d committed: it was changed", part.Path, len(rows), part.Rows)
		}
		for i := range rows {
			p.pairs[key(rows[i].Addr, rows[i].Port)] = struct{}{}
		}
	}
	return p, nil
}

// Has reports whether an earlier run committed the pair. A nil Prior has none.
func (p *Prior) Has(addr uint32, port uint16) bool {
	if p == nil || len(p.pairs) == 0 {
		return false
	}
	_, ok := p.pairs[key(addr, port)]
	return ok
}

// Len is the number of pairs committed earlier.
func (p *Prior) Len() int {
	if p == nil {
		return 0
	}
	return len(p.pairs)
}

// folded reports whether an earlier part is one of own, or was folded into
// one of own (it lay in that output's parts directory).
func folded(pp Part, own []Part) bool {
	for _, o := range own {
		if pp.Path == o.Path || filepath.Dir(pp.Path) == PartsDir(o.Path) {
			return true
		}
	}
	return false
}
