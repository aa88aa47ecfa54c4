"""KUMKM notifications: contacts, templates, and delivery that is never lost or sent twice."""
