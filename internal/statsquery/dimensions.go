package statsquery

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const propsPrefix = "event:props:"

var timeDims = map[string]bool{"time:hour": true, "time:day": true, "time:month": true}

// plainDims are the non-time dimensions other than event:props:NAME.
var plainDims = map[string]bool{
	"event:page": true, "event:goal": true,
	"visit:source": true, "visit:referrer": true,
	"visit:utm_source": true, "visit:utm_medium": true, "visit:utm_campaign": true,
	"visit:country": true, "visit:device": true, "visit:browser": true,
	"visit:os": true, "visit:entry_page": true,
}

// plausibleOnlyDims are Plausible dimensions Veil does not answer; naming
// them lets the error say "not supported" rather than "unknown".
var plausibleOnlyDims = map[string]bool{
	"time": true, "time:week": true, "time:minute": true,
	"event:name": true, "event:hostname": true,
	"visit:exit_page": true, "visit:exit_page_hostname": true, "visit:entry_page_hostname": true,
	"visit:region": true, "visit:region_name": true, "visit:city": true, "visit:city_name": true,
	"visit:country_name": true, "visit:browser_version": true, "visit:os_version": true,
	"visit:utm_term": true, "visit:utm_content": true, "visit:channel": true, "segment": true,
}

// identifierNames are names (lower-cased, without _ - . and spaces) of fields
// that identify a person. A dimension or filter on one would single people
// out, so they are refused however they are spelled (visit:user_id,
// event:props:E-Mail, …). The list is short on purpose: it catches the
// obvious cases; the PII scrubbing at collection time is the real defence.
var identifierNames = map[string]bool{
	"email": true, "emailaddress": true, "userid": true, "uid": true, "username": true,
	"ip": true, "ipaddress": true, "phone": true, "phonenumber": true, "ssn": true,
	"name": true, "fullname": true, "firstname": true, "lastname": true,
	"pseudonym": true, "visitorid": true, "sessionid": true, "deviceid": true,
	"clientid": true, "customerid": true, "accountid": true,
}

func isTimeDim(d string) bool { return strings.HasPrefix(d, "time:") }

func isIdentifierName(s string) bool {
	if len(s) > MaxPropNameBytes {
		return false
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '_', '-', '.', ' ':
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return identifierNames[b.String()]
}

// isIdentifierDim reports whether d is a visit:/event: dimension whose last
// segment names an identifier (visit:user_id, event:props:email).
func isIdentifierDim(d string) bool {
	if !strings.HasPrefix(d, "visit:") && !strings.HasPrefix(d, "event:") {
		return false
	}
	return isIdentifierName(d[strings.LastIndexByte(d, ':')+1:])
}

// dimProblem returns why d is not a dimension Veil answers (reason and
// message), or "" when it is one. identMsg is the message for identifiers,
// which differs between dimensions and filters.
func dimProblem(d, identMsg string) (reason, msg string) {
	switch {
	case timeDims[d] || plainDims[d]:
		return "", ""
	case isIdentifierDim(d):
		return reasonIdentifier, identMsg
	case strings.HasPrefix(d, propsPrefix):
		name := d[len(propsPrefix):]
		if name == "" || len(name) > MaxPropNameBytes || !printable(name) {
			return reasonInvalid, fmt.Sprintf("property name must be 1 to %d printable bytes", MaxPropNameBytes)
		}
		return "", ""
	case plausibleOnlyDims[d]:
		return reasonUnsupport, fmt.Sprintf("dimension %s is not supported", echo(d))
	default:
		return reasonInvalid, fmt.Sprintf("unknown dimension %s", echo(d))
	}
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// parseDimensions reads at most one time dimension and one other. span is
// the length of the date range, which bounds time:hour.
func parseDimensions(raw json.RawMessage, span time.Duration) ([]string, error) {
	arr, err := decodeArray(raw, "dimensions", "an array of dimension names")
	if err != nil {
		return nil, err
	}
	if len(arr) > MaxDimensions {
		return nil, bad(reasonInvalid, "dimensions", "at most %d dimensions are allowed (one time dimension and one other)", MaxDimensions)
	}
	var out []string
	for i, r := range arr {
		field := fmt.Sprintf("dimensions[%d]", i)
		d, err := decodeString(r, field)
		if err != nil {
			return nil, err
		}
		if reason, msg := dimProblem(d, "identifiers cannot be dimensions: grouping by "+echo(d)+" would single out people"); msg != "" {
			return nil, bad(reason, field, "%s", msg)
		}
		switch {
		case slices.Contains(out, d):
			return nil, bad(reasonInvalid, field, "dimension %s is listed twice", echo(d))
		case len(out) == 1 && isTimeDim(out[0]) == isTimeDim(d) && isTimeDim(d):
			return nil, bad(reasonInvalid, field, "at most one time dimension is allowed")
		case len(out) == 1 && isTimeDim(out[0]) == isTimeDim(d):
			return nil, bad(reasonInvalid, field, "at most one dimension other than time is allowed")
		case d == "time:hour" && span > MaxHourDays*24*time.Hour:
			return nil, bad(reasonInvalid, field, "time:hour needs a date_range of at most %d days", MaxHourDays)
		}
		out = append(out, d)
	}
	return out, nil
}

var supportedOps = map[string]bool{"is": true, "is_not": true, "contains": true, "contains_not": true}

// filterParser flattens nested "and" expressions into one list of filters.
type filterParser struct {
	out []Filter
}

// parseFilters reads [[op, dim, [values]], ...], where any element may be
// ["and", [...]]; the brief form "filters": ["and", [...]] is accepted too.
func parseFilters(raw json.RawMessage) ([]Filter, error) {
	arr, err := decodeArray(raw, "filters", "an array of filters")
	if err != nil {
		return nil, err
	}
	var p filterParser
	if len(arr) > 0 && kind(arr[0]) == '"' {
		// The whole value is one expression, ["and", [...]]. A bare leaf
		// [op, dim, values] is refused as Plausible refuses it, so that
		// queries written against Veil keep working against Plausible.
		if op, _ := decodeString(arr[0], ""); op != "and" && op != "or" && op != "not" {
			return nil, bad(reasonInvalid, "filters", "must be a list of filters, e.g. [[operator, dimension, [values]]]")
		}
		if err := p.expr(raw, "filters", 0); err != nil {
			return nil, err
		}
		return p.out, nil
	}
	if len(arr) > MaxFilters {
		return nil, bad(reasonInvalid, "filters", "at most %d filters are allowed", MaxFilters)
	}
	for i, el := range arr {
		if err := p.expr(el, fmt.Sprintf("filters[%d]", i), 0); err != nil {
			return nil, err
		}
	}
	return p.out, nil
}

func (p *filterParser) expr(raw json.RawMessage, field string, depth int) error {
	arr, err := decodeArray(raw, field, "a filter like [operator, dimension, [values]]")
	if err != nil {
		return err
	}
	if len(arr) == 0 {
		return bad(reasonInvalid, field, "must be a filter like [operator, dimension, [values]]")
	}
	op, err := decodeString(arr[0], field+"[0]")
	if err != nil {
		return err
	}
	switch {
	case op == "and":
		if len(arr) != 2 {
			return bad(reasonInvalid, field, `must be ["and", [filters...]]`)
		}
		if depth >= maxAndDepth {
			return bad(reasonInvalid, field, "filters are nested too deeply")
		}
		subs, err := decodeArray(arr[1], field+"[1]", "an array of filters")
		if err != nil {
			return err
		}
		if len(subs) == 0 {
			return bad(reasonInvalid, field+"[1]", `"and" needs at least one filter`)
		}
		for j, sub := range subs {
			if err := p.expr(sub, fmt.Sprintf("%s[1][%d]", field, j), depth+1); err != nil {
				return err
			}
		}
		return nil
	case op == "or" || op == "not":
		return bad(reasonUnsupport, field+"[0]", "%q filters are not supported yet; only a flat AND of filters is", op)
	case !supportedOps[op]:
		return bad(reasonUnsupport, field+"[0]", "operator %s is not supported", echo(op))
	}
	if len(p.out) >= MaxFilters {
		return bad(reasonInvalid, "filters", "at most %d filters are allowed", MaxFilters)
	}
	if len(arr) == 4 {
		return bad(reasonUnsupport, field+"[3]", "filter modifiers are not supported")
	}
	if len(arr) != 3 {
		return bad(reasonInvalid, field, "must be [operator, dimension, [values]]")
	}
	dim, err := decodeString(arr[1], field+"[1]")
	if err != nil {
		return err
	}
	if timeDims[dim] {
		return bad(reasonInvalid, field+"[1]", "time dimensions cannot be filtered; use date_range")
	}
	if reason, msg := dimProblem(dim, "filters on identifiers are not allowed"); msg != "" {
		return bad(reason, field+"[1]", "%s", msg)
	}
	vals, err := decodeArray(arr[2], field+"[2]", "an array of strings")
	if err != nil {
		return err
	}
	if len(vals) == 0 || len(vals) > MaxFilterValues {
		return bad(reasonInvalid, field+"[2]", "must hold 1 to %d values", MaxFilterValues)
	}
	f := Filter{Op: op, Dim: dim, Values: make([]string, 0, len(vals))}
	for k, v := range vals {
		vf := fmt.Sprintf("%s[2][%d]", field, k)
		s, err := decodeString(v, vf)
		if err != nil {
			return err
		}
		// The value is not echoed: it may be personal data.
		if len(s) > MaxValueBytes {
			return bad(reasonInvalid, vf, "must be at most %d bytes", MaxValueBytes)
		}
		f.Values = append(f.Values, s)
	}
	// Values are alternatives (OR), so their order and repeats mean nothing.
	slices.Sort(f.Values)
	f.Values = slices.Compact(f.Values)
	p.out = append(p.out, f)
	return nil
}
