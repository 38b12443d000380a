package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/veil-analytics/veil/internal/event"
)

// stream returns a site's stream, or nil when it has none.
func (l *Log) stream(ctx context.Context, siteID string) (jetstream.Stream, error) {
	st, err := l.js.Stream(ctx, StreamName(siteID))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return st, err
}

// scanSubject calls fn for each message stored under subject, in order.
func scanSubject(ctx context.Context, st jetstream.Stream, subject string, fn func(seq uint64, data []byte) error) error {
	// Most pseudonym versions of a subject hold nothing: ask for the
	// subject's last message first rather than wait out an empty fetch.
	if _, err := st.GetLastMsgForSubject(ctx, subject); errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return err
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			return err
		}
		n := 0
		var pending uint64
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			if err := fn(md.Sequence.Stream, msg.Data()); err != nil {
				return err
			}
			pending = md.NumPending
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if n == 0 || pending == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// UserEvents calls fn with each stored event of the declared user p.
func (l *Log) UserEvents(ctx context.Context, siteID string, p event.Pseudonym, fn func(event.Event) error) error {
	st, err := l.stream(ctx, siteID)
	if err != nil || st == nil {
		return err
	}
	return scanSubject(ctx, st, UserSubject(siteID, p), func(seq uint64, data []byte) error {
		evs, err := event.DecodeBatch(data)
		if err != nil {
			return fmt.Errorf("message %d: %w", seq, err)
		}
		for _, e := range evs {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// Erased is an event deleted from the log, with the stream sequence of
// the message that held it.
type Erased struct {
	Seq   uint64
	Event event.Event
}

// EraseUser removes every stored message of the declared user p and
// returns the events they held, in log order. Each message is securely
// deleted (overwritten on disk, not just marked), then the subject is
// purged to catch messages that arrived meanwhile.
func (l *Log) EraseUser(ctx context.Context, siteID string, p event.Pseudonym) ([]Erased, error) {
	st, err := l.stream(ctx, siteID)
	if err != nil || st == nil {
		return nil, err
	}
	subject := UserSubject(siteID, p)
	var seqs []uint64
	var out []Erased
	err = scanSubject(ctx, st, subject, func(seq uint64, data []byte) error {
		if evs, err := event.DecodeBatch(data); err == nil {
			for _, e := range evs {
				out = append(out, Erased{Seq: seq, Event: e})
			}
		}
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, seq := range seqs {
		if err := st.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, fmt.Errorf("erase message %d: %w", seq, err)
		}
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return out, err
	}
	return out, nil
}

// PurgeBefore removes a site's messages whose events all happened before
// cutoff, oldest first, stopping at the first message that holds a newer
// event (events arrive roughly in time order, so little lingers). JetStream
// already drops messages older than the stream's MaxAge by arrival time;
// this enforces retention by event time and by Veil's own clock, and
// returns how many events were removed. Messages are securely deleted one
// by one: a purge by sequence leaves the bytes of a partly purged file
// block on disk.
func (l *Log) PurgeBefore(ctx context.Context, siteID string, cutoff time.Time) (int, error) {
	st, err := l.stream(ctx, siteID)
	if err != nil || st == nil {
		return 0, err
	}
	var old []uint64
	n := 0
	errStop := errors.New("stop")
	err = l.Scan(ctx, siteID, func(seq uint64, evs []event.Event) error {
		for _, e := range evs {
			if !e.Time.Before(cutoff) {
				return errStop
			}
		}
		old = append(old, seq)
		n += len(evs)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, err
	}
	for _, seq := range old {
		if err := st.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, fmt.Errorf("purge message %d: %w", seq, err)
		}
	}
	return n, nil
}
