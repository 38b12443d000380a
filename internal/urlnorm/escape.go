package urlnorm

const upperHex = "0123456789ABCDEF"

// Byte classes, built once: table look-ups keep the per-byte loop cheap.
var (
	unreserved   [256]bool // RFC 3986 unreserved: ALPHA DIGIT - . _ ~
	pathLiteral  [256]bool // left as is in a path segment: unreserved, sub-delims, ':' and '@'
	queryLiteral [256]bool // left as is in a query component: unreserved only
)

func init() {
	for c := 0; c < 256; c++ {
		u := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~'
		unreserved[c] = u
		queryLiteral[c] = u
		pathLiteral[c] = u
	}
	for _, c := range "!$&'()*+,;=:@" {
		pathLiteral[c] = true
	}
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// appendEscaped appends s in canonical percent-encoding: escapes of
// unreserved bytes are decoded (they mean the same thing either way), other
// escapes are upper-cased, a '%' not starting an escape becomes "%25", and
// any byte not literal in this component (spaces, quotes, non-ASCII) is
// escaped. In query components '+' is a form-encoded space and becomes "%20".
// The result decodes to the same bytes as s and is a fixed point.
func appendEscaped(b []byte, s string, literal *[256]bool, query bool) []byte {
	for i := 0; i < len(s); i++ {
		// Copy runs of literal bytes at once: most URLs are mostly literal.
		if literal[s[i]] && !(query && s[i] == '+') {
			j := i + 1
			for j < len(s) && literal[s[j]] && !(query && s[j] == '+') {
				j++
			}
			b = append(b, s[i:j]...)
			i = j - 1
			continue
		}
		c := s[i]
		switch {
		case c == '%':
			if i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
				c = unhex(s[i+1])<<4 | unhex(s[i+2])
				i += 2
				if unreserved[c] {
					b = append(b, c)
					continue
				}
			}
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		case query && c == '+':
			b = append(b, "%20"...)
		default:
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return b
}

// nextQueryByte decodes the query byte at s[i] ('+' is a space, a malformed
// '%' stands for itself) and returns it with the index of the next one.
func nextQueryByte(s string, i int) (byte, int) {
	switch c := s[i]; c {
	case '+':
		return ' ', i + 1
	case '%':
		if i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			return unhex(s[i+1])<<4 | unhex(s[i+2]), i + 3
		}
		return c, i + 1
	default:
		return c, i + 1
	}
}
