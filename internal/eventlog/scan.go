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
	stream, err := l.stream(ctx, siteID)
	if err != nil || stream == nil {
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
			// Deleted messages leave gaps, so the stream's last message
			// may be gone: nothing pending also ends the scan.
			if md.Sequence.Stream >= last || md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		if n == 0 {
			// Messages up to last expired or were deleted meanwhile.
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
