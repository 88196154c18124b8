package api

import (
	"net/url"
	"strings"
)

// parseMetadataFilter decodes the list routes' metadata parameter. Clients
// URL-encode each key and value, join them as k=v&k2=v2, and URL-encode that
// again as the parameter; the JS and Python clients add one more layer (the
// joined string goes through a form encoder before the query encoder). So
// after the normal query decoding, raw is split on "&" and "=", and each key
// and value is unescaped once, and a second time when it still holds an
// escaped "%" (that is, "%25"), which only the extra layer produces.
// Example: {"a b": "c&d"} arrives as metadata=a%2520b%3Dc%2526d (and from
// the JS client as metadata=a%252520b%3Dc%252526d).
func parseMetadataFilter(raw string) (map[string]string, error) {
	if raw == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, badf("metadata: %q is not of the form key=value", pair)
		}
		key, err := unescapeFilterPart(k)
		if err != nil {
			return nil, badf("metadata: bad escape in key %q", k)
		}
		if key == "" {
			return nil, badf("metadata: empty key in %q", pair)
		}
		val, err := unescapeFilterPart(v)
		if err != nil {
			return nil, badf("metadata: bad escape in value %q", v)
		}
		out[key] = val
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// unescapeFilterPart unescapes one key or value of the metadata filter: once,
// and once more when the first pass only revealed escapes ("%25XX").
func unescapeFilterPart(s string) (string, error) {
	once, err := url.QueryUnescape(s)
	if err != nil {
		return "", err
	}
	if !strings.Contains(strings.ToLower(s), "%25") {
		return once, nil
	}
	twice, err := url.QueryUnescape(once)
	if err != nil {
		// A literal "%" the client escaped only once: keep one pass.
		return once, nil
	}
	return twice, nil
}
