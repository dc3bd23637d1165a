"""The web console (issue 16): server-rendered pages on the inbound API's FastAPI app for the
people who are not in Primero — establishment officers, registry reviewers, the
data-protection officer and operators.

    mount_console(app, settings, store, keyring, registry)   # console/app.py; api/app.py mounts it

Local accounts (``cpims-adapter console add-user``) sign in with an argon2id password and, for
every role but the establishment officer, a TOTP code; ``signin.sign_in_with_identity`` is the
seam through which an OIDC sign-in starts the same session.
"""
