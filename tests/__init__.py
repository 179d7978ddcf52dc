"""alarmd's tests: unit/, integration/ and notifier/ (the email sidecar)."""
