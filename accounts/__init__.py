"""Accounts: users, roles and permissions, login tokens, API keys and the audit log.

``domain`` is pure (roles, permissions, scope rules); ``passwords`` hashes with
argon2id; ``store`` declares the tables on :data:`core.db.Base`; ``service`` holds
the operations, each taking a SQLAlchemy session the caller commits.
"""
