package urlnorm

import "testing"

var (
	benchPage Page
	benchRef  Referrer
)

func BenchmarkParsePage(b *testing.B) {
	const raw = "https://www.example.com/blog/post-title/?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale&fbclid=IwAR2xyzAbCdEf123"
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParsePage(raw, Options{})
		if err != nil {
			b.Fatal(err)
		}
		benchPage = p
	}
}

func BenchmarkParsePageRoute(b *testing.B) {
	const raw = "https://app.example.com/dashboard/?utm_source=x&sid=abc#/projects/42/settings?tab=billing"
	opt := Options{AllowedParams: []string{"ref", "utm_*"}, KeepRouteFragment: true}
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParsePage(raw, opt)
		if err != nil {
			b.Fatal(err)
		}
		benchPage = p
	}
}

func BenchmarkParseReferrer(b *testing.B) {
	const raw = "https://www.google.com/search?q=privacy+first+analytics&client=firefox-b-d"
	b.ReportAllocs()
	for b.Loop() {
		r, ok := ParseReferrer(raw, "example.com")
		if !ok {
			b.Fatal("not ok")
		}
		benchRef = r
	}
}

func BenchmarkParseReferrerUnknown(b *testing.B) {
	const raw = "https://blog.someone.example.org/2024/05/links.html"
	b.ReportAllocs()
	for b.Loop() {
		r, ok := ParseReferrer(raw, "example.com")
		if !ok {
			b.Fatal("not ok")
		}
		benchRef = r
	}
}
