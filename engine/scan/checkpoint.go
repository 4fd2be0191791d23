package scan

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/reachscan/reach/engine/permute"
	"github.com/reachscan/reach/engine/target"
)

// Checkpoint is where a scan stands: enough to continue it so that the
// interrupted and the resumed runs together probe every target exactly as
// one uninterrupted run would (a target may be probed twice after a crash,
// never skipped). It names the plan it belongs to, and Resume refuses
// another plan's checkpoint.
type Checkpoint struct {
	Seed      uint64             `json:"seed"`
	Space     string             `json:"space"` // fingerprint of targets × ports
	N         uint64             `json:"index_space"`
	Prime     uint64             `json:"prime"`
	Generator uint64             `json:"generator"`
	Shards    int                `json:"shards"`
	Shard     int                `json:"shard"`
	Threads   int                `json:"sender_threads"`
	Positions []permute.Position `json:"positions"` // one per sender thread
	Written   time.Time          `json:"written"`
	Done      bool               `json:"done"` // every run finished
	// Outputs records the files committed when the checkpoint was written
	// (the results pipeline's parts): every reply to a probe before
	// Positions is in them.
	Outputs json.RawMessage `json:"outputs,omitempty"`
}

// snapshot is where the senders stood at a time.
type snapshot struct {
	at  time.Time
	pos []permute.Position
}

// checkpointer writes the checkpoint of a running scan: it commits the
// outputs, then records the newest positions whose replies the commit
// covers (taken at least ReplyWindow before the commit's safe time).
type checkpointer struct {
	cfg          Config
	snaps        []snapshot // oldest first; snaps[0] is always usable
	commitFailed bool
}

// save records the positions now (as they stood at time at), commits and
// writes the checkpoint. done marks a finished scan (only when the
// positions recorded are the final ones). It returns the positions
// recorded.
func (c *checkpointer) save(now []permute.Position, at time.Time, done bool) ([]permute.Position, error) {
	c.snaps = append(c.snaps, snapshot{at, now})
	pos := now
	var outputs json.RawMessage
	if c.cfg.Commit != nil {
		safe, out, err := c.cfg.Commit()
		if err != nil {
			c.commitFailed = true
			return nil, fmt.Errorf("commit outputs: %w", err)
		}
		outputs = out
		limit := safe.Add(-c.cfg.ReplyWindow)
		i := 0
		for j := range c.snaps {
			if !c.snaps[j].at.After(limit) {
				i = j
			}
		}
		done = done && i == len(c.snaps)-1
		pos = c.snaps[i].pos
		c.snaps = c.snaps[i:] // older ones are never needed again
	}
	ck := NewCheckpoint(c.cfg.Plan, pos, done)
	ck.Outputs = outputs
	return pos, ck.Save(c.cfg.Checkpoint)
}

// SaveFinal writes the checkpoint of a scan whose outputs are complete
// (outputs records their files): the final positions when the cooldown ran
// to its end and every hit was handled, else those of the last checkpoint
// Run wrote.
func SaveFinal(cfg Config, res *Result, outputs json.RawMessage) error {
	if cfg.Checkpoint == "" || res == nil || res.Checkpointed == nil {
		return nil
	}
	pos, done := res.Checkpointed, false
	if res.CooledDown {
		pos, done = res.Positions, res.Finished
	}
	ck := NewCheckpoint(cfg.Plan, pos, done)
	ck.Outputs = outputs
	return ck.Save(cfg.Checkpoint)
}

// Fingerprint identifies a target space: SHA-256 over its address ranges
// and ports.
func Fingerprint(sp *target.Space) string {
	h := sha256.New()
	var b [8]byte
	for _, r := range sp.Set().Ranges() {
		binary.BigEndian.PutUint32(b[:4], r.First)
		binary.BigEndian.PutUint32(b[4:], r.Last)
		h.Write(b[:])
	}
	for _, p := range sp.Ports() {
		binary.BigEndian.PutUint16(b[:2], p)
		h.Write(b[:2])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// NewCheckpoint records positions of plan p.
func NewCheckpoint(p *Plan, pos []permute.Position, done bool) *Checkpoint {
	return &Checkpoint{Seed: p.Seed, Space: Fingerprint(p.Space), N: p.Space.Len(), Prime: p.Cycle.Prime(), Generator: p.Cycle.Generator(),
		Shards: p.Layout.Shards, Shard: p.Layout.Shard, Threads: p.Layout.Threads, Positions: pos, Written: time.Now().UTC(), Done: done}
}

// Matches checks that c belongs to plan p.
func (c *Checkpoint) Matches(p *Plan) error {
	switch {
	case c.Space != Fingerprint(p.Space) || c.N != p.Space.Len():
		return fmt.Errorf("checkpoint is for other targets or ports (give the same targets, lists and -p as the interrupted scan)")
	case c.Seed != p.Seed:
		return fmt.Errorf("checkpoint is for seed %d, not %d", c.Seed, p.Seed)
	case c.Shards != p.Layout.Shards || c.Shard != p.Layout.Shard || c.Threads != p.Layout.Threads:
		return fmt.Errorf("checkpoint is for shard %d of %d with %d sender threads; give --shards %d --shard %d -T %d",
			c.Shard, c.Shards, c.Threads, c.Shards, c.Shard, c.Threads)
	case len(c.Positions) != p.Layout.Threads:
		return fmt.Errorf("checkpoint has %d positions for %d threads", len(c.Positions), p.Layout.Threads)
	}
	for t, pos := range c.Positions {
		if _, err := p.Cycle.Resume(p.Layout, t, pos); err != nil {
			return err
		}
	}
	return nil
}

// Save writes c to path atomically (NAME.tmp, fsync, rename).
func (c *Checkpoint) Save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp") // unique per writer
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after the rename; left by a failure
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// LoadCheckpoint reads a checkpoint file.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var c Checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return &c, nil
}
