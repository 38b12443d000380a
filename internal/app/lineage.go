package app

import (
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/veil-analytics/veil/internal/dp"
	"github.com/veil-analytics/veil/internal/eventlog"
	"github.com/veil-analytics/veil/internal/keys"
	"github.com/veil-analytics/veil/internal/lineage"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
)

// lineageReporter emits OpenLineage run events: for each closed day of a
// site, its ingestion (HTTP → stream) and aggregation (stream → rollups)
// runs, and for each DP release, the release run with its privacy loss.
// Lineage is best effort: a failed emit is logged, never fatal.
type lineageReporter struct {
	em     lineage.Emitter
	src    lineage.Source
	st     store.Store
	keys   func() string // current pseudonym key version
	db     string        // dataset namespace of the state store
	stream string        // dataset namespace of the event log
	logger *slog.Logger
}

func (l *lineageReporter) site(id string) (store.Site, bool) {
	s, err := l.st.SiteByID(context.Background(), id)
	return s, err == nil
}

func unitOf(s store.Site) string {
	if s.UserUnit {
		return "user"
	}
	return "visitor-day"
}

func (l *lineageReporter) emit(ev lineage.RunEvent) {
	if err := l.em.Emit(context.Background(), ev); err != nil {
		l.logger.Warn("lineage event not emitted", "job", ev.Job.Name, "err", err)
	}
}

// fieldTransforms is what the collector does to each incoming field of s.
func fieldTransforms(s store.Site) map[string]lineage.Transform {
	f := map[string]lineage.Transform{
		"ip": lineage.Generalized, "user_agent": lineage.Generalized, "url": lineage.Redacted,
		"referrer": lineage.Generalized, "user_id": lineage.Hashed, "id": lineage.Hashed, "props": lineage.Redacted,
	}
	for name, a := range s.Fields {
		f["props."+name] = map[store.FieldAction]lineage.Transform{store.FieldTokenize: lineage.Tokenized,
			store.FieldHash: lineage.Hashed, store.FieldDrop: lineage.Dropped, store.FieldKeep: lineage.Kept}[a]
	}
	return f
}

func (l *lineageReporter) rollups() []lineage.Dataset {
	return []lineage.Dataset{{Namespace: l.db, Name: "agg_rollup"}, {Namespace: l.db, Name: "agg_pairs"}}
}

func bounds(s store.Site) lineage.Bounds {
	c := site.CapsOf(s)
	return lineage.Bounds{MaxPartitionsContributed: c.Pages, MaxContributionsPerPartition: int64(c.PageviewsPerPage)}
}

// dayClosed reports the day's ingestion and aggregation runs.
func (l *lineageReporter) dayClosed(siteID string, day time.Time) {
	s, ok := l.site(siteID)
	if !ok {
		return
	}
	stream := lineage.Dataset{Namespace: l.stream, Name: eventlog.StreamName(s.ID)}
	in := lineage.Ingestion{Site: s.Domain, Endpoint: lineage.Dataset{Namespace: "veil", Name: "/api/event+/api/v1/events"},
		Stream: stream, PrivacyUnit: unitOf(s), PseudonymKeyVersion: l.keys(), Fields: fieldTransforms(s)}
	run := lineage.NewRunID()
	l.emit(l.src.IngestionEvent(lineage.Start, run, day, in))
	l.emit(l.src.IngestionEvent(lineage.Complete, run, day.Add(24*time.Hour), in))
	agg := lineage.Aggregation{Site: s.Domain, Stream: stream, Rollups: l.rollups(), PrivacyUnit: unitOf(s), Bounds: bounds(s)}
	run = lineage.NewRunID()
	l.emit(l.src.AggregationEvent(lineage.Start, run, day, agg))
	l.emit(l.src.AggregationEvent(lineage.Complete, run, time.Now().UTC(), agg))
}

// released reports one DP release. A day's release is charged once for
// its breakdowns and hours; hourly releases report the day's budget share.
func (l *lineageReporter) released(siteID, period string, start time.Time) {
	s, ok := l.site(siteID)
	if !ok {
		return
	}
	b := SiteBudget(s)
	comp := lineage.Parallel
	if s.UserUnit {
		comp = lineage.Sequential
	}
	rel := lineage.Release{Site: s.Domain, Rollups: l.rollups(), Released: lineage.Dataset{Namespace: l.db, Name: "released/" + period},
		PrivacyUnit: unitOf(s), Bounds: bounds(s),
		DP: lineage.DP{Mechanism: "gaussian", Rho: b.ReleaseRho(), Epsilon: dp.EpsilonFromRho(b.ReleaseRho(), b.Delta), Delta: b.Delta, Composition: comp}}
	run := lineage.NewRunID()
	l.emit(l.src.ReleaseEvent(lineage.Start, run, start, rel))
	l.emit(l.src.ReleaseEvent(lineage.Complete, run, time.Now().UTC(), rel))
}

// primaryKey returns the current pseudonym key version of ring.
func primaryKey(ring *keys.Ring) func() string {
	return func() string {
		for _, k := range ring.Status() {
			if k.Name == keys.Pseudonym {
				return strconv.FormatUint(uint64(k.PrimaryID), 10)
			}
		}
		return ""
	}
}

// lineageStreamNS is the dataset namespace of the event log, without any
// credentials the URL carries.
func lineageStreamNS(natsURL string) string {
	u, err := url.Parse(natsURL)
	if natsURL == "" || err != nil {
		return "nats://embedded"
	}
	u.User = nil
	return u.String()
}
