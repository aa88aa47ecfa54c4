"""The notifications domain: subscriptions, delivery rules and contact preferences. No I/O."""
