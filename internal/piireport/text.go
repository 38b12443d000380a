package piireport

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText writes reps as a table followed by the advice for each field
// that needs attention, for `veil pii report`.
func WriteText(w io.Writer, reps []FieldReport) error {
	if len(reps) == 0 {
		_, err := fmt.Fprintln(w, "No fields observed yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIELD\tSEEN\tDECLARED\tVALUES LOOK LIKE\tNAME SUGGESTS\tSTATUS")
	for _, r := range reps {
		declared := string(r.Declared)
		if declared == "" {
			declared = "-"
		}
		var kinds, names []string
		for _, k := range r.Kinds {
			kinds = append(kinds, fmt.Sprintf("%s %s (%.2f)", k.Kind, percent(k.Hits, r.Seen), k.MaxScore))
		}
		for _, n := range r.NameSuggests {
			names = append(names, fmt.Sprintf("%s (%.2f)", n.Kind, n.Score))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Field, count(r.Seen), declared, orDash(kinds), orDash(names), r.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	first := true
	for _, r := range reps {
		if r.Status == StatusOK {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", r.Field, r.Advice); err != nil {
			return err
		}
	}
	return nil
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}
