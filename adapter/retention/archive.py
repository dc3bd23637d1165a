"""Archive, un-archive and destroy one case's data inside a caller's transaction.

What the adapter holds per Primero case id, and what happens to it (privacy.md §6.7):

======================  =====================================  ================================
live row                archived (moved into the blob)         kept live (idempotency needs it)
======================  =====================================  ================================
``links``               ``remote_note``, ``remote_outputs``    keys, case code, stage, hashes,
                                                               references and statuses
``outbox`` (not         ``payload`` (decrypted, then sealed    idempotency key, kind, status
pending or dead)        inside the blob), ``result``,
                        ``last_error``
``inbox``               ``response_body`` (replays then get    message id, request hash, status
                        ``{}`` with the original status)
======================  =====================================  ================================

Pending and dead outbox messages keep their payloads: the delivery still owns them and erases
them when they are sent or dropped (adapter/state/outbox.py); destruction deletes them anyway.

Destruction erases the wrapped per-case key and the blob (the crypto-shred), deletes every
remaining live row of the case (links, outbox, inbox, short codes, consent overrides, held
referrals), and
keeps the tombstone ``(case_ref, destroyed_at)``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from adapter.clock import utcnow
from adapter.privacy._tables import consent_overrides, short_codes
from adapter.privacy.audit import append_entry
from adapter.privacy.keys import KeyRing
from adapter.retention._crypto import case_ref, case_ref_key, open_archive, seal_archive
from adapter.retention._tables import case_archives
from adapter.retention.aggregates import Contribution, add
from adapter.retention.errors import RetentionError
from adapter.state.held import note_key
from adapter.state.outbox import DEAD, PENDING, lanes_of
from adapter.state.schema import held_referrals, inbox, links, outbox


@dataclass(frozen=True)
class Archived:
    """What archiving one case moved (counts only)."""

    links: int
    payloads: int
    inbox_bodies: int
    outbox_held: int


def archive_case(
    conn: Connection,
    keyring: KeyRing,
    *,
    case_id: str,
    ref: str,
    cell: Contribution,
    closed_at: datetime,
    destroy_after: datetime,
    now: datetime,
) -> Archived:
    """Seal the case's live data into one archive, blank the live copies, count the case once
    in the aggregates, and audit it. The case must not be archived already."""
    link_rows, outbox_rows, inbox_rows = _live_rows(conn, case_id)
    keys = [r.link_key for r in link_rows]
    held = [r for r in outbox_rows if r.status in (PENDING, DEAD)]
    moved = [r for r in outbox_rows if r.status not in (PENDING, DEAD)]
    outbox_content, payloads = _outbox_content(keyring, moved)
    content: dict[str, Any] = {
        "case_id": case_id,
        "closed_at": closed_at.isoformat(),
        "contribution": cell.as_dict(),
        "links": [
            {
                "link_key": r.link_key,
                "remote_note": r.remote_note,
                "remote_outputs": r.remote_outputs,
            }
            for r in link_rows
        ],
        "outbox": outbox_content,
        "inbox": [{"id": r.id, "response_body": r.response_body} for r in inbox_rows],
    }
    blob, wrapped = seal_archive(keyring, ref, content)
    conn.execute(
        case_archives.insert().values(
            case_ref=ref,
            wrapped_key=wrapped,
            blob=blob,
            closed_at=closed_at,
            archived_at=now,
            destroy_after=destroy_after,
        )
    )
    _blank_live_copies(conn, case_id, keys, moved, inbox_rows)
    add(conn, cell, +1)
    append_entry(
        conn, keyring, {"event": "case_archived", "case_ref": ref, "count": len(keys)}, now=now
    )
    return Archived(len(keys), payloads, len(inbox_rows), len(held))


def _live_rows(
    conn: Connection, case_id: str
) -> tuple[Sequence[Row[Any]], Sequence[Row[Any]], Sequence[Row[Any]]]:
    """The case's links, the outbox messages of their lanes, and their inbox answers."""
    link_rows = conn.execute(
        sa.select(links.c.link_key, links.c.remote_note, links.c.remote_outputs).where(
            links.c.case_id == case_id
        )
    ).all()
    keys = [r.link_key for r in link_rows]
    outbox_rows = conn.execute(
        sa.select(
            outbox.c.id,
            outbox.c.idempotency_key,
            outbox.c.status,
            outbox.c.payload,
            outbox.c.result,
            outbox.c.last_error,
        ).where(outbox.c.link_key.in_(lanes_of(keys)))
    ).all()
    inbox_rows = conn.execute(
        sa.select(inbox.c.id, inbox.c.response_body).where(inbox.c.link_key.in_(keys))
    ).all()
    return link_rows, outbox_rows, inbox_rows


def _outbox_content(
    keyring: KeyRing, moved: Sequence[Row[Any]]
) -> tuple[list[dict[str, Any]], int]:
    """The delivered messages as the archive keeps them (payloads decrypted, base64), and how
    many payloads there were."""
    payloads = 0
    outbox_content = []
    for row in moved:
        plain = None
        if row.payload:
            context = row.idempotency_key.encode()
            plain = base64.b64encode(keyring.decrypt_payload(bytes(row.payload), context=context))
            payloads += 1
        outbox_content.append(
            {
                "idempotency_key": row.idempotency_key,
                "payload": plain.decode("ascii") if plain else None,
                "result": row.result,
                "last_error": row.last_error,
            }
        )
    return outbox_content, payloads


def _blank_live_copies(
    conn: Connection,
    case_id: str,
    keys: Sequence[str],
    moved: Sequence[Row[Any]],
    inbox_rows: Sequence[Row[Any]],
) -> None:
    """Blank what the archive now holds: link notes, delivered payloads, inbox answers."""
    # A closed case waits for no decision any more (jobs/sync.py holds referrals of open ones).
    conn.execute(held_referrals.delete().where(held_referrals.c.case_id == case_id))
    if keys:
        conn.execute(
            links.update()
            .where(links.c.case_id == case_id)
            # sa.null(): a JSON column would store None as the JSON text 'null'.
            .values(remote_note=None, remote_outputs=sa.null())
        )
    if moved:
        conn.execute(
            outbox.update()
            .where(outbox.c.id.in_([r.id for r in moved]))
            .values(payload=b"", result=sa.null(), last_error=None)
        )
    if inbox_rows:
        conn.execute(
            inbox.update()
            .where(inbox.c.id.in_([r.id for r in inbox_rows]))
            .values(response_body={})
        )


def unarchive_case(conn: Connection, keyring: KeyRing, *, ref: str, now: datetime) -> str:
    """A case reopened before destruction: put its data back where it was (unless the live row
    got newer data meanwhile), subtract its contribution, delete the archive, and audit it.
    Returns the case id."""
    row = conn.execute(
        sa.select(case_archives.c.blob, case_archives.c.wrapped_key).where(
            case_archives.c.case_ref == ref, case_archives.c.destroyed_at.is_(None)
        )
    ).one()
    content = open_archive(keyring, ref, bytes(row.blob), bytes(row.wrapped_key))
    for link in content["links"]:
        conn.execute(
            links.update()
            .where(
                links.c.link_key == link["link_key"],
                links.c.remote_note.is_(None),
            )
            .values(remote_note=link["remote_note"], remote_outputs=link["remote_outputs"])
        )
    for message in content["outbox"]:
        values: dict[str, Any] = {"result": message["result"], "last_error": message["last_error"]}
        if message["payload"] is not None:
            key = message["idempotency_key"]
            plain = base64.b64decode(message["payload"])
            values["payload"] = keyring.encrypt_payload(plain, context=key.encode())
        conn.execute(
            outbox.update()
            .where(outbox.c.idempotency_key == message["idempotency_key"])
            .values(**values)
        )
    for body in content["inbox"]:
        conn.execute(
            inbox.update()
            .where(inbox.c.id == body["id"])
            .values(response_body=body["response_body"])
        )
    add(conn, Contribution(**content["contribution"]), -1)
    conn.execute(case_archives.delete().where(case_archives.c.case_ref == ref))
    append_entry(conn, keyring, {"event": "case_unarchived", "case_ref": ref}, now=now)
    return str(content["case_id"])


def destroy_case(conn: Connection, keyring: KeyRing, *, ref: str, now: datetime) -> bool:
    """Crypto-shred one archive and delete the case's live rows; keep the tombstone.

    Returns False if the archive could no longer be opened (then the live rows are found by
    trying every case id in ``links`` against ``ref``); the key and blob are erased either way.
    """
    row = conn.execute(
        sa.select(case_archives.c.blob, case_archives.c.wrapped_key).where(
            case_archives.c.case_ref == ref, case_archives.c.destroyed_at.is_(None)
        )
    ).one()
    opened = True
    try:
        content = open_archive(keyring, ref, bytes(row.blob), bytes(row.wrapped_key))
    except RetentionError:
        opened = False
        found = _case_by_ref(conn, keyring, ref)
        if found is not None:
            purge_case(conn, found)
    else:
        purge_case(conn, str(content["case_id"]))
    conn.execute(
        case_archives.update()
        .where(case_archives.c.case_ref == ref)
        .values(
            wrapped_key=None,
            blob=None,
            closed_at=None,
            archived_at=None,
            destroy_after=None,
            destroyed_at=now,
        )
    )
    append_entry(conn, keyring, {"event": "case_destroyed", "case_ref": ref}, now=now)
    return opened


def _case_by_ref(conn: Connection, keyring: KeyRing, ref: str) -> str | None:
    """The live case id whose ``case_ref`` is ``ref``, by trying every id in ``links`` (the
    slow path, for an archive that can no longer be opened)."""
    key = case_ref_key(conn, keyring, create=False, now=utcnow())
    if key is None:
        return None
    for case_id in conn.execute(sa.select(links.c.case_id).distinct()).scalars():
        if case_ref(key, case_id) == ref:
            return str(case_id)
    return None


def purge_case(conn: Connection, case_id: str) -> int:
    """Delete every live row the adapter holds about ``case_id``; returns the links deleted."""
    keys = list(
        conn.execute(sa.select(links.c.link_key).where(links.c.case_id == case_id)).scalars()
    )
    held = list(
        conn.execute(
            sa.select(held_referrals.c.link_key).where(held_referrals.c.case_id == case_id)
        ).scalars()
    )
    # A held referral's note to the CPO travels under its own key (adapter/state/held.py).
    notes = [note_key(key) for key in {*keys, *held}]
    if notes:
        conn.execute(outbox.delete().where(outbox.c.link_key.in_(notes)))
    conn.execute(held_referrals.delete().where(held_referrals.c.case_id == case_id))
    if keys:
        conn.execute(inbox.delete().where(inbox.c.link_key.in_(keys)))
        # A write-back's parts travel in lanes of their link (adapter/state/outbox.py).
        conn.execute(outbox.delete().where(outbox.c.link_key.in_(lanes_of(keys))))
        conn.execute(links.delete().where(links.c.case_id == case_id))
    conn.execute(short_codes.delete().where(short_codes.c.case_id == case_id))
    conn.execute(consent_overrides.delete().where(consent_overrides.c.case_id == case_id))
    return len(keys)
