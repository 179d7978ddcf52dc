"""The email sidecar: `alarmd notify` turns notification requests into grouped,
templated emails, each request in exactly one email as far as SMTP allows."""
