package main

// CLI actions on a site's data and on tokens go through the running
// server's API with an API token: the server checks the token's role (the
// same rules as for any HTTP client) and writes admin changes, ad hoc
// queries and data subject requests to the audit log before it answers.
// Only the holder of the key-encryption key acts without a token, on a
// stopped server (see operator.go).

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veil-analytics/veil/internal/piireport"
	"github.com/veil-analytics/veil/internal/query"
	"github.com/veil-analytics/veil/internal/site"
	"github.com/veil-analytics/veil/internal/store"
)

// apiClient calls a Veil server's API with a bearer token.
type apiClient struct {
	url, token string
}

// apiFlags adds --url and --token to fs; who names the roles that may act.
func apiFlags(fs *flag.FlagSet, who string) *apiClient {
	c := &apiClient{}
	fs.StringVar(&c.url, "url", env("url", "http://localhost:8080"), "the server's URL (env VEIL_URL)")
	fs.StringVar(&c.token, "token", env("token", ""), "an API token of "+who+" (env VEIL_TOKEN)")
	return c
}

// call sends in (JSON, if not nil) and decodes the answer into out (if not
// nil; a *json.RawMessage receives it as is). Non-2xx answers become errors
// carrying the server's message.
func (c *apiClient) call(method, path string, in, out any) error {
	if c.token == "" {
		return errors.New("no API token: pass --token or set VEIL_TOKEN (veil serve prints an admin token on its first start)")
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(c.url, "/")+path, body)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the server (is veil serve running at %s?): %w", c.url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("the server answered %d: %s", res.StatusCode, e.Error)
		}
		return fmt.Errorf("the server answered %d: %s", res.StatusCode, bytes.TrimSpace(b))
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = b
		return nil
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func sitePath(domain, rest string) string {
	return "/api/v1/sites/" + neturl.PathEscape(domain) + rest
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func siteAdd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("site add", flag.ContinueOnError)
	c := apiFlags(fs, "an admin")
	retention := fs.String("retention", "30d", "how long events are kept, e.g. 30d or 90d")
	var params listFlag
	fs.Var(&params, "allow-params", "query parameters kept in page URLs (names or prefixes ending in *); default utm_*")
	unit := fs.String("privacy-unit", "visitor-day", `privacy unit: "visitor-day" or "user" (declared user ids)`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: veil site add DOMAIN [--retention 30d] [--privacy-unit visitor-day|user] [--url URL] [--token TOKEN]")
	}
	ret, err := site.ParseRetention(*retention)
	if err != nil {
		return err
	}
	days := int(ret / (24 * time.Hour))
	req := struct {
		Domain string `json:"domain"`
		site.Settings
	}{Domain: pos[0], Settings: site.Settings{RetentionDays: &days, PrivacyUnit: unit}}
	if len(params) > 0 {
		req.AllowedParams = params
	}
	var v site.View
	if err := c.call(http.MethodPost, "/api/v1/sites", req, &v); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "site %s added (id %s, retention %d days)\n", v.Domain, v.ID, v.RetentionDays)
	return nil
}

func siteList(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("site list", flag.ContinueOnError)
	c := apiFlags(fs, "an admin")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var out struct{ Sites []site.View }
	if err := c.call(http.MethodGet, "/api/v1/sites", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tID\tRETENTION\tPRIVACY UNIT")
	for _, s := range out.Sites {
		fmt.Fprintf(tw, "%s\t%s\t%dd\t%s\n", s.Domain, s.ID, s.RetentionDays, s.PrivacyUnit)
	}
	return tw.Flush()
}

func tokenCreate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	c := apiFlags(fs, "an admin")
	role := fs.String("role", "", fmt.Sprintf("role: one of %v", store.Roles))
	name := fs.String("name", "", "a note saying what the token is for")
	var sites listFlag
	fs.Var(&sites, "site", "limit the token to these site domains (repeatable)")
	breakGlass := fs.Bool("break-glass", false, "create the token offline as the key-encryption key's holder, with veil serve stopped (recovery when no admin token is left); audited")
	data, kek := dataFlag(fs), kekFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *role == "" {
		return fmt.Errorf("--role is required (one of %v)", store.Roles)
	}
	if *breakGlass {
		return breakGlassToken(*data, *kek, *name, store.Role(*role), sites, stdout)
	}
	if sites == nil {
		sites = listFlag{}
	}
	var v struct {
		Token string `json:"token"`
	}
	if err := c.call(http.MethodPost, "/api/v1/tokens", map[string]any{"name": *name, "role": *role, "sites": sites}, &v); err != nil {
		return err
	}
	fmt.Fprintln(stdout, v.Token)
	return nil
}

func tokenList(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token list", flag.ContinueOnError)
	c := apiFlags(fs, "an admin")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var out struct {
		Tokens []struct {
			ID, Name string
			Role     store.Role
			Sites    []string
			Created  time.Time
		}
	}
	if err := c.call(http.MethodGet, "/api/v1/tokens", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tNAME\tSITES\tCREATED")
	for _, t := range out.Tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, t.Name, strings.Join(t.Sites, ","), t.Created.Format(time.RFC3339))
	}
	return tw.Flush()
}

func tokenRevoke(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token revoke", flag.ContinueOnError)
	c := apiFlags(fs, "an admin")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: veil token revoke ID [--url URL] [--token TOKEN]")
	}
	if err := c.call(http.MethodDelete, "/api/v1/tokens/"+neturl.PathEscape(pos[0]), nil, nil); err != nil {
		return fmt.Errorf("revoke %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "token %s revoked\n", pos[0])
	return nil
}

// queryCmd sends a Stats API query: released numbers are free, ad hoc ones
// are charged and audited by the server, as for any API client.
func queryCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	c := apiFlags(fs, "a viewer, analyst or admin")
	siteName := fs.String("site", "", "site domain (sets site_id)")
	body := fs.String("json", "", `the query, e.g. '{"metrics":["visitors"],"date_range":"7d"}'`)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *body == "" {
		return errors.New("usage: veil query --site example.com --json '{\"metrics\":[\"visitors\"],\"date_range\":\"7d\"}'")
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(*body), &m); err != nil {
		return fmt.Errorf("--json: %v", err)
	}
	if *siteName != "" {
		m["site_id"] = *siteName
	}
	var raw json.RawMessage
	if err := c.call(http.MethodPost, "/api/v2/query", m, &raw); err != nil {
		return err
	}
	return printJSON(stdout, raw)
}

func budgetCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("budget", flag.ContinueOnError)
	c := apiFlags(fs, "a viewer, analyst or admin")
	from := fs.String("from", "", "first day, YYYY-MM-DD (default 29 days ago)")
	to := fs.String("to", "", "last day, YYYY-MM-DD (default today)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: veil budget SITE [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--url URL] [--token TOKEN]")
	}
	q := neturl.Values{}
	if *from != "" {
		q.Set("from", *from)
	}
	if *to != "" {
		q.Set("to", *to)
	}
	var rep query.BudgetReport
	if err := c.call(http.MethodGet, sitePath(pos[0], "/budget?"+q.Encode()), nil, &rep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "privacy unit: %s; budget epsilon %.3g per %s at delta %.0e\n\n", rep.PrivacyUnit, rep.DailyEpsilon, rep.Period, rep.Delta)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY OR MONTH\tRELEASES RHO\tAD HOC RHO\tAD HOC EPSILON LEFT\tEPSILON SPENT")
	for _, d := range rep.Days {
		fmt.Fprintf(tw, "%s\t%.4g\t%.4g\t%.3g of %.3g\t%.3g\n", d.Period, d.ReleasedRho, d.AdHocRhoSpent, d.AdHocEpsilonLeft, d.AdHocEpsilonTotal, d.TotalEpsilonSpent)
	}
	return tw.Flush()
}

func releasesCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("releases", flag.ContinueOnError)
	c := apiFlags(fs, "a viewer, analyst or admin")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: veil releases SITE [--url URL] [--token TOKEN]")
	}
	var out struct{ Releases []query.ReleaseRun }
	if err := c.call(http.MethodGet, sitePath(pos[0], "/releases"), nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PERIOD\tSTART (UTC)\tRELEASED AT\tVALUES\tDAY'S RELEASE COST")
	for _, r := range out.Releases {
		cost := "-"
		if r.Period == "day" {
			cost = fmt.Sprintf("rho %.4g of %s (now spent %.4g)", r.Rho, r.BudgetKey, r.KeySpent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Period, r.Start.Format("2006-01-02 15:04"), r.ReleasedAt.Format(time.RFC3339), r.Values, cost)
	}
	return tw.Flush()
}

// piiCmd prints which props of a site carry what kind of personal data
// (counts only; the server flushes them every 30 s).
func piiCmd(sub string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pii", flag.ContinueOnError)
	c := apiFlags(fs, "an admin or privacy officer")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if sub != "report" || len(pos) != 1 {
		return errors.New("usage: veil pii report SITE [--url URL] [--token TOKEN]")
	}
	var out struct{ Fields []piireport.FieldReport }
	if err := c.call(http.MethodGet, sitePath(pos[0], "/pii"), nil, &out); err != nil {
		return err
	}
	return piireport.WriteText(stdout, out.Fields)
}

// dsrCmd sends a data subject request to the running server: erasure must
// reach the server's event log and its aggregation state, and the server's
// audit log records it.
func dsrCmd(sub string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dsr", flag.ContinueOnError)
	c := apiFlags(fs, "a privacy officer")
	userID := fs.String("user-id", "", "the subject's declared user id")
	email := fs.String("email", "", "the subject's email")
	reason := fs.String("reason", "", "why (recorded in the audit log; no personal data)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if sub != "export" && sub != "erase" || len(pos) != 1 || (*userID == "") == (*email == "") || *reason == "" {
		return errors.New("usage: veil dsr export|erase SITE (--user-id ID | --email ADDRESS) --reason TEXT [--url URL] [--token TOKEN]")
	}
	req := map[string]string{"reason": *reason}
	if *userID != "" {
		req["user_id"] = *userID
	} else {
		req["email"] = *email
	}
	var raw json.RawMessage
	if err := c.call(http.MethodPost, sitePath(pos[0], "/dsr/"+sub), req, &raw); err != nil {
		return err
	}
	return printJSON(stdout, raw)
}
