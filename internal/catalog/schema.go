package catalog

import (
	"fmt"
	"slices"
	"strings"

	"github.com/veil-analytics/veil/internal/piireport"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
	"github.com/veil-analytics/veil/internal/urlnorm"
)

// eventSchema describes the fields of the stored event (event.Event) for
// site s. The facts come from the collector: see collect.Process.
func eventSchema(s store.Site, v site.View) []Field {
	unit := "Keyed pseudonym of the privacy unit. Cookieless visitors: HMAC-SHA256 of site, IP address and user agent " +
		"under a salt of the UTC day that is destroyed 48 hours after the day began, so it links one visitor's events " +
		"within a day and nobody can recompute it later. Events with a user_id: a keyed pseudonym (Tink HMAC-SHA256 PRF) " +
		"of the declared id, stable across days. Server events with neither: random per event."
	if s.UserUnit {
		unit += " This product's privacy unit is the declared user."
	}
	out := []Field{
		field("time", "timestamp", Kept, QuasiIdentifier,
			"When the event happened, UTC, to the millisecond. A client-supplied time must lie within the retention and at most 5 minutes ahead."),
		field("name", "string", Kept, Public,
			"Event name: pageview, engagement or a custom name. A name that looks like personal data is refused."),
		field("host", "string", Kept, Public,
			"Page host, normalized: lower case, no port, user info or www."),
		field("path", "string", Redacted, QuasiIdentifier,
			"Page path, normalized. Segments that look like personal data are replaced by their kind (/users/:email); "+
				"the fragment is dropped unless the page uses hash routing."),
		field("query", "string", Redacted, QuasiIdentifier, fmt.Sprintf(
			"Page query parameters on the allow-list (%s) only; every other parameter is dropped. Kept values are not scanned for personal data.",
			strings.Join(v.AllowedParams, ", "))),
		field("referrer", "string", Generalized, QuasiIdentifier,
			"Referrer host only; its path and query are never read. Empty for internal navigation."),
		field("source", "string", Generalized, Public,
			"Traffic source: utm_source if present, else a name for a well-known referrer host (Google), else the host."),
	}
	out = append(out, utmFields(s)...)
	out = append(out,
		field("country", "string", Generalized, QuasiIdentifier,
			"ISO 3166-1 alpha-2 country looked up from the IP address at the edge; empty when unknown or sent by a server."),
		field("browser", "string", Generalized, QuasiIdentifier, "Browser family parsed from the user agent at the edge."),
		field("browser_version", "string", Generalized, QuasiIdentifier, "Browser version parsed from the user agent."),
		field("os", "string", Generalized, QuasiIdentifier, "Operating system parsed from the user agent."),
		field("os_version", "string", Generalized, QuasiIdentifier, "Operating system version parsed from the user agent."),
		field("device", "string", Generalized, QuasiIdentifier, "Device class (desktop, mobile, tablet, tv, console...) parsed from the user agent."),
		field("unit", "enum", Kept, Public, "What the pseudonym stands for: visitor-day, user or event."),
		field("pseudonym", "binary(16)", Pseudonymized, Sensitive, unit),
		field("key_version", "uint32", Kept, Public,
			"The key (or salt day) that made the pseudonym, so a key rotation is visible instead of silently breaking joins."),
		field("id_hash", "binary(16)", Hashed, Public,
			"Keyed hash of the client-supplied event id, used only to drop duplicates; one per event, so it links nothing."),
		field("interactive", "boolean", Kept, Public, "Whether the event counts towards bounce rate."),
		field("scroll_depth", "int16", Kept, Public, "How far down the page was scrolled, 0 to 100; -1 when not sent."),
		field("engaged_ms", "uint32", Kept, Public, "Engagement time in milliseconds."),
	)
	return out
}

var utmNames = []string{"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}

// utmFields describes the UTM fields, which are filled only when the
// site's query allow-list keeps the parameter. The normalizer itself is
// asked, so the catalog cannot disagree with it.
func utmFields(s store.Site) []Field {
	probe := "https://catalog.invalid/?"
	for i, n := range utmNames {
		if i > 0 {
			probe += "&"
		}
		probe += n + "=x"
	}
	page, _ := urlnorm.ParsePage(probe, urlnorm.Options{AllowedParams: s.AllowedParams})
	got := []string{page.UTMSource, page.UTMMedium, page.UTMCampaign, page.UTMTerm, page.UTMContent}
	out := make([]Field, 0, len(utmNames))
	for i, n := range utmNames {
		// Search terms and ad contents are free text about the visitor's
		// intent; campaign, source and medium are set by marketers.
		c := Public
		if n == "utm_term" || n == "utm_content" {
			c = QuasiIdentifier
		}
		if got[i] == "" {
			out = append(out, field(n, "string", Dropped, c, "Not collected: "+n+" is not on the site's query allow-list."))
			continue
		}
		out = append(out, field(n, "string", Kept, c,
			"The "+n+" query parameter, decoded and cut to 128 bytes; not scanned for personal data."))
	}
	return out
}

// propSchema describes custom props: each declared field, each observed
// field the PII report knows, and, without a declared schema, the rule for
// all others.
func propSchema(s store.Site, reps []piireport.FieldReport) []Field {
	var out []Field
	byName := map[string]piireport.FieldReport{}
	for _, r := range reps {
		byName[r.Field] = r
	}
	names := make([]string, 0, len(s.Fields)+len(reps))
	for n := range s.Fields {
		names = append(names, n)
	}
	for _, r := range reps {
		if _, declared := s.Fields[r.Field]; !declared && r.Seen > 0 && !piireport.Placeholder(r.Field) {
			names = append(names, r.Field)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		f := propField(s, n)
		if r, ok := byName[n]; ok {
			addFindings(&f, r)
		}
		out = append(out, f)
	}
	if len(s.Fields) == 0 {
		out = append(out, field("props.*", "string", Redacted, QuasiIdentifier, allowedProps(s)+
			"Values that look like personal data are replaced by a marker naming the kind; props whose name looks like personal data are dropped. "+
			"Declare a field schema to tokenize, hash, keep or drop each field."))
	}
	return out
}

func allowedProps(s store.Site) string {
	if s.AllowedProps == nil {
		return "Any prop name is accepted. "
	}
	return fmt.Sprintf("Only props named %s are accepted. ", strings.Join(s.AllowedProps, ", "))
}

// propField describes prop name under s's field policy.
func propField(s store.Site, name string) Field {
	n := "props." + name
	action, declared := s.Fields[name]
	switch {
	case declared:
		var f Field
		switch action {
		case store.FieldTokenize:
			f = field(n, "string", Tokenized, DirectIdentifier,
				"Declared tokenize: replaced by a vault token (tok_...) before storage; the value is kept encrypted in the vault, per data subject, for the few who may resolve it, and erased with the subject's key.")
		case store.FieldHash:
			f = field(n, "string", Pseudonymized, Sensitive,
				"Declared hash: replaced by a keyed pseudonym (h<key>_<hex>) per site and field, so equal values stay joinable without being stored.")
		case store.FieldDrop:
			f = field(n, "string", Dropped, Public, "Declared drop: removed at the edge, never stored.")
		default:
			f = field(n, "string", Kept, Public,
				"Declared keep: stored as sent, for non-identifying values; a value that looks like personal data is still replaced by a marker.")
		}
		f.Declared = action
		return f
	case len(s.Fields) > 0:
		what := "dropped at the edge"
		if s.Undeclared == store.UndeclaredReject {
			what = "events carrying it are rejected"
		}
		return field(n, "string", Dropped, Public, "Sent but not declared: "+what+".")
	case !s.PropAllowed(name):
		return field(n, "string", Dropped, Public, "Sent but not an allowed prop: dropped at the edge.")
	}
	return field(n, "string", Redacted, QuasiIdentifier,
		"Observed prop without a declared schema: values that look like personal data are replaced by a marker naming the kind.")
}

// addFindings adds what the PII report knows to a prop field. A field
// that keeps its values while the report finds personal data in them is
// classified and tagged as a direct identifier, whatever it was declared
// as.
func addFindings(f *Field, r piireport.FieldReport) {
	f.Detected = r.Detected
	if r.Status == piireport.StatusOK || f.Transform == Dropped {
		return
	}
	kinds := make([]string, len(r.Detected))
	for i, k := range r.Detected {
		kinds[i] = piireport.KindLabel(k)
	}
	switch {
	case r.Status == piireport.StatusAction && len(kinds) > 0:
		f.Flag = "the PII report finds " + strings.Join(kinds, ", ") + " in its values: declare this field as tokenize or hash, or stop sending it"
		f.Classification = DirectIdentifier
		f.Tags = append(tags(DirectIdentifier, f.Transform), TagPIIDetected)
	case len(r.NameSuggests) > 0:
		f.Flag = "its name suggests " + piireport.KindLabel(r.NameSuggests[0].Kind) + ": declare it tokenize, hash or drop if it holds them"
	}
}

// edgeDrops lists what arrives with an event but is never stored, so the
// catalog tells the whole story of the data.
func edgeDrops(s store.Site) []Field {
	uid := "The declared user id: replaced by its keyed pseudonym, never stored."
	if s.UserUnit {
		uid += " It defines this product's privacy unit."
	}
	return []Field{
		field("ip_address", "string", Dropped, DirectIdentifier,
			"The client IP address: used at the edge for the visitor-day pseudonym and the country, then discarded; never written to the log."),
		field("user_agent", "string", Dropped, QuasiIdentifier,
			"The client user agent: used at the edge for the pseudonym, bot filtering and browser, OS and device, then discarded."),
		field("user_id", "string", Dropped, DirectIdentifier, uid),
		field("event_id", "string", Dropped, Sensitive,
			"The client-supplied event id: only its keyed hash (id_hash) is kept, since clients sometimes put personal data in it."),
		field("url.other", "string", Dropped, QuasiIdentifier,
			"Every part of the page URL but host, path and allowed query parameters: fragment, user info, port, path parameters and other query parameters."),
		field("referrer.path", "string", Dropped, QuasiIdentifier,
			"The referrer's path and query, which may hold search terms or tokens: never read."),
	}
}
