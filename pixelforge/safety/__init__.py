"""Guards for untrusted input: SSRF-safe URL fetching and bounded image decoding."""
