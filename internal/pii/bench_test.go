package pii

import "testing"

// harmless is a mix of the prop values ingestion sees most.
var harmless = []string{
	"signup", "blue", "42", "/pricing", "true", "2024", "pro", "1700000000",
	"19.99", "en-US", "2024-01-31", "checkout_started", "#ff00aa", "v1.2.3",
	"550e8400-e29b-41d4-a716-446655440000", "Hello world", "/blog/how-we-built-it",
	"10:30", "mobile", "1920x1080",
}

var piiValues = []string{
	"a@b.co", "contact me at john.doe@example.com", "4111 1111 1111 1111",
	"DE89 3704 0044 0532 0130 00", "203.0.113.7", "2001:db8::1", "123-45-6789",
	"+44 20 7946 0958", "(415) 555-2671", "AB123456C",
}

var sink Finding

func BenchmarkBestHarmless(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink, _ = Best(harmless[i%len(harmless)])
	}
}

func BenchmarkBestPII(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink, _ = Best(piiValues[i%len(piiValues)])
	}
}

func BenchmarkFieldName(b *testing.B) {
	names := []string{"user_email", "firstName", "utm_source", "plan", "IPAddress", "button_id"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink, _ = FieldName(names[i%len(names)])
	}
}
