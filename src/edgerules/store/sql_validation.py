"""The SQL side of the validation settings and CRLs (issue 10; schema version 2), for
every backend (SQLite and PostgreSQL run the same statements).

Owns the SQL for: per-CA settings (``uploaded_cas.profile/allow/crl_stale``), hostname
profile overrides (``hostname_settings``), stored CRLs and CRL sources (``crls``), and
the per-hostname trust entries the validators are built from. Mixed into
:class:`~edgerules.store.sql.SQLStore`, whose ``_read``/``_write``/``_bump`` and CA
lookups it uses.

Invariants: every change is one transaction and bumps the ``trust`` counter in it (so
every proxy's state sync picks it up and rebuilds its validators: reloaded without
restart); a CRL fetch that brings nothing new bumps nothing. What the validators read
(settings per hostname, CRLs) comes from the store's one consistent state read
(``SQLiteStore._load_state``), not from here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from edgerules.pki import inspect, issuing
from edgerules.pki.crl import CRLRecord
from edgerules.pki.errors import PKIError
from edgerules.pki.hostnames import normalize_hostnames
from edgerules.pki.records import UploadedCA
from edgerules.store.validation import CRLFields, normalize_settings

__all__ = ["ValidationSQL"]

_CRL_COLUMNS = (
    "c.id, c.ca_id, u.name, c.issuer, c.crl_number, c.this_update, c.next_update, "
    "c.revoked_count, c.url, c.refresh_seconds, c.fetched_on, c.last_error, c.added_on"
)


class ValidationSQL:
    """Mixin: the issue-10 methods of the store interface, over SQL."""

    # SQLStore provides: account_id, _read(), _write(), _bump(c, name),
    # _find_uploaded(c, ref) (one CA by id or name, PKIError when absent) and _changed()
    # (after a commit: this store's in-memory state is reloaded before we return).
    account_id: str

    # -- per-CA settings ----------------------------------------------------------------

    def set_ca_settings(
        self,
        ref: str,
        *,
        profile: str | None = None,
        allow: Iterable[str] | str | None = None,
        crl_stale: str | None = None,
    ) -> UploadedCA:
        new_profile, new_allow, new_stale = normalize_settings(profile, allow, crl_stale)
        with self._write() as c:
            ca = self._find_uploaded(c, ref)
            values = {
                "profile": new_profile or ca.profile,
                "allow": new_allow if new_allow is not None else ca.allow,
                "crl_stale": new_stale or ca.crl_stale,
            }
            if (values["profile"], values["allow"], values["crl_stale"]) != (
                ca.profile, ca.allow, ca.crl_stale
            ):
                c.execute(
                    "UPDATE uploaded_cas SET profile = ?, allow = ?, crl_stale = ? WHERE id = ?",
                    (values["profile"], values["allow"], values["crl_stale"], ca.id),
                )
                self._bump(c, "trust")
            updated = self._find_uploaded(c, ca.id)
        self._changed()  # committed: this store's validators see it now
        return updated

    # -- hostname overrides -------------------------------------------------------------

    def set_hostname_profile(
        self, hostnames: Iterable[str], profile: str | None, allow: Iterable[str] | str = ()
    ) -> list[str]:
        names = normalize_hostnames(hostnames)
        if profile is not None:
            prof, allow_text, _ = normalize_settings(profile, allow, None)
        with self._write() as c:
            for host in names:
                if profile is None:
                    c.execute(
                        "DELETE FROM hostname_settings WHERE account_id = ? AND hostname = ?",
                        (self.account_id, host),
                    )
                else:
                    c.execute(
                        "INSERT INTO hostname_settings (account_id, hostname, profile, allow) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (account_id, hostname) DO UPDATE "
                        "SET profile = excluded.profile, allow = excluded.allow",
                        (self.account_id, host, prof, allow_text or ""),
                    )
            self._bump(c, "trust")
        self._changed()
        return names

    def hostname_profiles(self) -> dict[str, tuple[str, str]]:
        with self._read() as c:
            rows = c.execute(
                "SELECT hostname, profile, allow FROM hostname_settings WHERE account_id = ? "
                "ORDER BY hostname",
                (self.account_id,),
            ).fetchall()
        return {h: (p, a) for h, p, a in rows}

    # -- CRLs -----------------------------------------------------------------------------

    def _crl_row(self, c: Any, crl_id: str) -> CRLRecord:
        row = c.execute(
            f"SELECT {_CRL_COLUMNS} FROM crls c LEFT JOIN uploaded_cas u ON u.id = c.ca_id "
            "WHERE c.account_id = ? AND c.id = ?",
            (self.account_id, crl_id),
        ).fetchone()
        if row is None:
            raise PKIError(f"CRL {crl_id!r} not found")
        return CRLRecord(*row)

    def _find_crl(self, c: Any, ref: str) -> CRLRecord:
        ident = ref.strip().lower().replace("-", "")
        if len(ident) != 32 or any(ch not in "0123456789abcdef" for ch in ident):
            raise PKIError(f"invalid CRL id {ref!r}: expected 32 hex characters")
        return self._crl_row(c, ident)

    def list_crls(self) -> list[CRLRecord]:
        with self._read() as c:
            rows = c.execute(
                f"SELECT {_CRL_COLUMNS} FROM crls c LEFT JOIN uploaded_cas u ON u.id = c.ca_id "
                "WHERE c.account_id = ? ORDER BY c.seq",
                (self.account_id,),
            ).fetchall()
        return [CRLRecord(*r) for r in rows]

    def get_crl(self, ref: str) -> CRLRecord:
        with self._read() as c:
            return self._find_crl(c, ref)

    def remove_crl(self, ref: str) -> CRLRecord:
        with self._write() as c:
            record = self._find_crl(c, ref)
            c.execute("DELETE FROM crls WHERE id = ?", (record.id,))
            self._bump(c, "trust")
        self._changed()
        return record

    def _insert_crl(
        self, fields: CRLFields | None, ca_id: str | None, url: str, refresh_seconds: int
    ) -> CRLRecord:
        crl_id = uuid.uuid4().hex
        now = inspect.rfc3339(issuing.utcnow())
        values: dict[str, Any] = {
            "crl": "", "issuer": "", "crl_number": "", "this_update": "", "next_update": "",
            "revoked_count": 0,
        }
        if fields is not None:
            values.update(
                crl=fields.pem, issuer=fields.issuer, crl_number=fields.crl_number,
                this_update=fields.this_update, next_update=fields.next_update,
                revoked_count=fields.revoked_count,
            )
        with self._write() as c:
            if ca_id is not None and not c.execute(
                "SELECT 1 FROM uploaded_cas WHERE id = ?", (ca_id,)
            ).fetchone():
                raise PKIError(f"uploaded CA {ca_id} not found")  # deleted meanwhile
            c.execute(
                "INSERT INTO crls (id, account_id, ca_id, crl, issuer, crl_number, this_update, "
                "next_update, revoked_count, url, refresh_seconds, fetched_on, last_error, "
                "added_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (crl_id, self.account_id, ca_id, values["crl"], values["issuer"],
                 values["crl_number"], values["this_update"], values["next_update"],
                 values["revoked_count"], url, refresh_seconds, now if url else "", "", now),
            )
            self._bump(c, "trust")
            record = self._crl_row(c, crl_id)
        self._changed()
        return record

    def _replace_crl(self, crl_id: str, fields: CRLFields | None, error: str) -> CRLRecord:
        now = inspect.rfc3339(issuing.utcnow())
        with self._write() as c:
            current = c.execute(
                "SELECT crl FROM crls WHERE account_id = ? AND id = ?", (self.account_id, crl_id)
            ).fetchone()
            if current is None:
                raise PKIError(f"CRL {crl_id!r} not found")  # removed meanwhile
            if fields is None:
                c.execute(
                    "UPDATE crls SET fetched_on = ?, last_error = ? WHERE id = ?",
                    (now, error, crl_id),
                )
            else:
                c.execute(
                    "UPDATE crls SET crl = ?, issuer = ?, crl_number = ?, this_update = ?, "
                    "next_update = ?, revoked_count = ?, fetched_on = ?, last_error = '' "
                    "WHERE id = ?",
                    (fields.pem, fields.issuer, fields.crl_number, fields.this_update,
                     fields.next_update, fields.revoked_count, now, crl_id),
                )
                if current[0] != fields.pem:
                    self._bump(c, "trust")
            record = self._crl_row(c, crl_id)
        self._changed()
        return record
