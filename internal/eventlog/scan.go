package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/veil-analytics/veil/internal/event"
)

// Scan calls fn for every message stored for a site at the time of the call,
// in log order, with the message's stream sequence and decoded events.
func (l *Log) Scan(ctx context.Context, siteID string, fn func(seq uint64, evs []event.Event) error) error {
	stream, err := l.js.Stream(ctx, StreamName(siteID))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			evs, err := event.DecodeBatch(msg.Data())
			if err != nil {
				return fmt.Errorf("message %d: %w", md.Sequence.Stream, err)
			}
			if err := fn(md.Sequence.Stream, evs); err != nil {
				return err
			}
			if md.Sequence.Stream >= last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		if n == 0 {
			// Messages up to last may have expired meanwhile.
			info, err := stream.Info(ctx)
			if err != nil {
				return err
			}
			if info.State.Msgs == 0 || info.State.FirstSeq > last {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
