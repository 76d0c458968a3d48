"""MedDAV core: an encrypted WebDAV file server for health care.

The packages below each own one concern (see ``docs/architecture.md``):

- :mod:`server.config`   typed settings read from TOML and validated at start
- :mod:`server.crypto`   key hierarchy, encrypted blob format, name encryption
- :mod:`server.storage`  blob stores (ciphertext only)
- :mod:`server.db`       SQLAlchemy models, engine set-up and Alembic migrations
- :mod:`server.tree`     the file tree kept in the database
- :mod:`server.policy`   the one answer to "may this principal do that?"
- :mod:`server.auth`     who is asking: credentials, password hashing
- :mod:`server.accounts` user accounts and organisations
- :mod:`server.dav`      the WebDAV face, the only package that imports wsgidav
- :mod:`server.app`      the WSGI application that dispatches by URL prefix
- :mod:`server.cli`      the ``meddav`` command
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
