"""Deployment security: TLS settings and contexts, client tokens, signed forwarding."""
