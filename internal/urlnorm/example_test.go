package urlnorm_test

import (
	"fmt"

	"github.com/veil-analytics/veil/internal/urlnorm"
)

func Example() {
	p, err := urlnorm.ParsePage(
		"https://www.Example.com/pricing/?utm_source=Newsletter&email=jane%40example.com#plans",
		urlnorm.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	r, ok := urlnorm.ParseReferrer("https://www.google.co.uk/search?q=jane+doe", p.Host)
	fmt.Printf("%s %s %q\n", p.Host, p.Path, p.Query)
	fmt.Println(r.Host, r.Source, ok)
	fmt.Println(urlnorm.Source(p, r, ok))
	fmt.Println(urlnorm.HostMatches(p.Host, "example.com"))
	// Output:
	// example.com /pricing "utm_source=Newsletter"
	// google.co.uk Google true
	// Newsletter
	// true
}

func ExampleOptions_routeFragment() {
	opt := urlnorm.Options{KeepRouteFragment: true}
	for _, raw := range []string{
		"https://app.example.com/#/users/42?tab=profile",
		"https://app.example.com/callback#access_token=secret",
	} {
		p, _ := urlnorm.ParsePage(raw, opt)
		fmt.Println(p.Path)
	}
	// Output:
	// /#/users/42
	// /callback
}
