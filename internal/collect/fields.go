package collect

import (
	"context"
	"fmt"
	"strings"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/pii"
	"github.com/veil-analytics/veil/internal/store"
)

// Tokenizer stores a value in the vault and returns its token.
type Tokenizer interface {
	Tokenize(ctx context.Context, siteID, subject, field, value string) (string, error)
}

// What happened to a field, as the batch API reports it.
const (
	FieldTokenized          = "tokenized"
	FieldHashed             = "hashed"
	FieldDropped            = "dropped"
	FieldKept               = "kept"
	FieldDroppedUndeclared  = "dropped: not declared"
	FieldRedacted           = "kept with personal data redacted"
	FieldDroppedNotAllowed  = "dropped: not an allowed prop"
	fieldRejectedUndeclared = "undeclared"
)

// valueScan is the strongest personal-data finding in a prop value.
type valueScan struct {
	f  pii.Finding
	ok bool
}

// Applied is what ingestion did with one field of one event.
type Applied struct {
	Field, Action string
}

// subjectOf is the vault subject declared fields are linked to: the
// declared user, else a tokenized email, else nobody ("").
func subjectOf(site store.Site, in *Input) string {
	if in.UserID != "" {
		return "user:" + in.UserID
	}
	for _, p := range in.Props {
		if p.Key == "email" && site.Fields["email"] == store.FieldTokenize {
			return "email:" + strings.ToLower(p.Value)
		}
	}
	return ""
}

// checkFields refuses undeclared fields when the site says so; it runs
// before anything is written, so a refused event leaves nothing behind.
func checkFields(site store.Site, in *Input) error {
	if len(site.Fields) == 0 || site.Undeclared != store.UndeclaredReject {
		return nil
	}
	for _, p := range in.Props {
		if _, ok := site.Fields[p.Key]; !ok {
			return bad(fieldRejectedUndeclared, "props."+p.Key, "field %q is not declared in the site's field policy, which rejects undeclared fields", p.Key)
		}
	}
	return nil
}

// applyFields turns props into stored props under the site's field
// policy. Without a declared schema, props are only filtered by the
// allowed names and scanned for personal data. Tokenization writes to the
// vault, so it runs last, after every check of the event has passed.
func (c *Collector) applyFields(ctx context.Context, site store.Site, in *Input) ([]event.Prop, error) {
	if len(site.Fields) == 0 {
		return c.redactProps(site, in), nil
	}
	subject := subjectOf(site, in)
	out := make([]event.Prop, 0, len(in.Props))
	for i, p := range in.Props {
		action, declared := site.Fields[p.Key]
		if !declared {
			in.Applied = append(in.Applied, Applied{p.Key, FieldDroppedUndeclared})
			continue
		}
		switch action {
		case store.FieldDrop:
			in.Applied = append(in.Applied, Applied{p.Key, FieldDropped})
		case store.FieldHash:
			h, err := c.cfg.Pseudo.Field(site.ID, p.Key, p.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, event.Prop{Key: p.Key, Value: h})
			in.Applied = append(in.Applied, Applied{p.Key, FieldHashed})
		case store.FieldTokenize:
			if c.cfg.Vault == nil {
				return nil, fmt.Errorf("field %s: no vault configured for tokenization", p.Key)
			}
			tok, err := c.cfg.Vault.Tokenize(ctx, site.ID, subject, p.Key, p.Value)
			if err != nil {
				return nil, fmt.Errorf("tokenize: %w", err)
			}
			out = append(out, event.Prop{Key: p.Key, Value: tok})
			in.Applied = append(in.Applied, Applied{p.Key, FieldTokenized})
		case store.FieldKeep:
			// Keep is for non-identifying fields; a value that looks like
			// personal data anyway is redacted, not trusted.
			v := p.Value
			act := FieldKept
			if s := in.scans[i]; s.ok && s.f.Score >= c.cfg.PIIThreshold {
				c.cfg.Metrics.Redactions.WithLabelValues(string(s.f.Kind), "prop").Inc()
				v, act = "[redacted "+string(s.f.Kind)+"]", FieldRedacted
			}
			out = append(out, event.Prop{Key: p.Key, Value: v})
			in.Applied = append(in.Applied, Applied{p.Key, act})
		}
	}
	return out, nil
}
