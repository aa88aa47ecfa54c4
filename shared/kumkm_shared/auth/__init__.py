"""Sign-in: verifying OpenID Connect access tokens, roles and region scopes, and getting tokens.

Rules: ``docs/rules/access.md``.
"""
