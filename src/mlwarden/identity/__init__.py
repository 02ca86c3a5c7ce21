"""Identity primitives: password hashing, API tokens and (later) users and TOTP."""
