"""Privacy requests (GDPR/CCPA access and erasure) over everything clickpipe stores: docs/privacy.md."""
