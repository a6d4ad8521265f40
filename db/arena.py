"""Queries of the arena's tables: rounds, their pictures, and votes. Plain values out, never ORM objects."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from db.models import ArenaPictureRow, ArenaRoundRow, ArenaVoteRow, utcnow
from db.session import session_scope, with_retry


@dataclass(frozen=True)
class Round:
    id: int
    title: str
    owner: str | None
    task: str
    operation: str
    params: dict[str, Any]
    models: list[str]
    titles: dict[str, str]
    status: str
    created_at: datetime
    closed_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class Picture:
    image_index: int
    image_name: str
    image_sha: str
    role: str  # input | reference | output
    model: str
    png: bytes
    scores: dict[str, Any]
    run_id: int | None


@dataclass(frozen=True)
class NewVote:
    round_id: int
    image_index: int
    image_sha: str
    model_a: str  # model_a < model_b
    model_b: str
    winner: str  # a | b | tie
    left: str
    voter: str


def _round(row: ArenaRoundRow) -> Round:
    models = row.models or {}
    return Round(row.id, row.title, row.owner, row.task, row.operation, dict(row.params or {}),
                 list(models.get("names", [])), dict(models.get("titles", {})), row.status, row.created_at,
                 row.closed_at)


def _add_pictures(s, round_id: int, pictures: list[Picture]) -> None:
    s.add_all(ArenaPictureRow(round_id=round_id, image_index=p.image_index, image_name=p.image_name,
                              image_sha=p.image_sha, role=p.role, model=p.model, png=p.png, scores=p.scores,
                              run_id=p.run_id) for p in pictures)


def create_round(url: str, *, title: str, owner: str | None, task: str, operation: str, params: dict[str, Any],
                 models: list[str], titles: dict[str, str], pictures: list[Picture], status: str = "open") -> int:
    """The round and its pictures in one transaction."""
    def tx() -> int:
        with session_scope(url) as s:
            row = ArenaRoundRow(title=title, owner=owner, task=task, operation=operation, params=params,
                                models={"names": models, "titles": titles}, status=status)
            s.add(row)
            s.flush()
            _add_pictures(s, row.id, pictures)
            return row.id
    return with_retry(tx)


def add_params(url: str, round_id: int, params: dict[str, Any]) -> None:
    def tx() -> None:
        with session_scope(url) as s:
            row = s.get(ArenaRoundRow, int(round_id))
            if row is not None:
                row.params = {**(row.params or {}), **params}
    with_retry(tx)


def finish_round(url: str, round_id: int, pictures: list[Picture], params: dict[str, Any], status: str) -> None:
    """A preparing round gets its pictures (its source images go) and `status`, with `params` added, in one
    transaction: nobody sees it half built. Nothing happens to a round that is no longer preparing (deleted)."""
    def tx() -> None:
        with session_scope(url) as s:
            row = s.get(ArenaRoundRow, int(round_id), with_for_update=True)
            if row is None or row.status != "preparing":
                return
            if pictures:
                s.execute(delete(ArenaPictureRow).where(ArenaPictureRow.round_id == row.id,
                                                        ArenaPictureRow.role == "source"))
                _add_pictures(s, row.id, pictures)
            row.params = {**(row.params or {}), **params}
            row.status = status
    with_retry(tx)


def rounds(url: str, *, limit: int = 50) -> list[Round]:
    """Newest first; open rounds before closed ones."""
    with session_scope(url) as s:
        rows = s.scalars(select(ArenaRoundRow).order_by((ArenaRoundRow.status == "open").desc(),
                                                        ArenaRoundRow.id.desc()).limit(limit)).all()
        return [_round(r) for r in rows]


def get_round(url: str, round_id: int) -> Round | None:
    with session_scope(url) as s:
        row = s.get(ArenaRoundRow, int(round_id))
        return None if row is None else _round(row)


def count_rounds(url: str, owner: str | None) -> int:
    with session_scope(url) as s:
        return int(s.scalar(select(func.count()).select_from(ArenaRoundRow).where(ArenaRoundRow.owner == owner)) or 0)


def set_status(url: str, round_id: int, status: str) -> None:
    def tx() -> None:
        with session_scope(url) as s:
            s.execute(update(ArenaRoundRow).where(ArenaRoundRow.id == int(round_id))
                      .values(status=status, closed_at=utcnow() if status == "closed" else None))
    with_retry(tx)


def delete_round(url: str, round_id: int) -> None:
    def tx() -> None:
        with session_scope(url) as s:  # children explicitly too: a store without foreign keys still ends clean
            for table in (ArenaVoteRow, ArenaPictureRow):
                s.execute(delete(table).where(table.round_id == int(round_id)))
            s.execute(delete(ArenaRoundRow).where(ArenaRoundRow.id == int(round_id)))
    with_retry(tx)


def pictures(url: str, round_id: int) -> list[Picture]:
    with session_scope(url) as s:
        rows = s.scalars(select(ArenaPictureRow).where(ArenaPictureRow.round_id == int(round_id))
                         .order_by(ArenaPictureRow.image_index, ArenaPictureRow.role, ArenaPictureRow.model)).all()
        return [Picture(r.image_index, r.image_name, r.image_sha, r.role, r.model, r.png, dict(r.scores or {}), r.run_id)
                for r in rows]


def add_vote(url: str, vote: NewVote) -> str:
    """Store a vote while its round is open: "stored", "duplicate" (this voter already voted on this pair and
    image; the unique constraint decides, so two tabs voting at once store one), "closed" or "gone".

    The transaction starts with a no-op UPDATE of the round's row that matches only an open round: it takes the
    write lock first (SQLite starts its transaction there, PostgreSQL locks the row), so a close that commits
    before it leaves nothing to match, and a close that comes after it waits for this vote."""
    def tx() -> str:
        try:
            with session_scope(url) as s:
                result = s.execute(update(ArenaRoundRow).where(ArenaRoundRow.id == vote.round_id,
                                                               ArenaRoundRow.status == "open")
                                   .values(status=ArenaRoundRow.status)
                                   .execution_options(synchronize_session=False))
                held = result.rowcount  # type: ignore[attr-defined]  # a CursorResult for an UPDATE
                if held != 1:
                    s.rollback()
                    status = s.scalar(select(ArenaRoundRow.status).where(ArenaRoundRow.id == vote.round_id))
                    return "gone" if status is None else "closed"
                s.add(ArenaVoteRow(round_id=vote.round_id, image_index=vote.image_index, image_sha=vote.image_sha,
                                   model_a=vote.model_a, model_b=vote.model_b, winner=vote.winner, left=vote.left,
                                   voter=vote.voter))
            return "stored"
        except IntegrityError:
            return "duplicate"  # the round row is locked by this transaction, so only the unique key can fail
    return with_retry(tx)


VOTE_COLUMNS = ["id", "image_index", "image_sha", "model_a", "model_b", "winner", "left", "voter", "created_at"]


def votes(url: str, round_id: int) -> pd.DataFrame:
    with session_scope(url) as s:
        rows = s.execute(select(*(getattr(ArenaVoteRow, c) for c in VOTE_COLUMNS))
                         .where(ArenaVoteRow.round_id == int(round_id)).order_by(ArenaVoteRow.id)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=VOTE_COLUMNS)


def vote_state(url: str, round_id: int) -> tuple[int, int]:
    """(number of votes, newest vote id): changes whenever a vote is added or the round's votes go."""
    with session_scope(url) as s:
        n, last = s.execute(select(func.count(ArenaVoteRow.id), func.coalesce(func.max(ArenaVoteRow.id), 0))
                            .where(ArenaVoteRow.round_id == int(round_id))).one()
        return int(n), int(last)


def voted(url: str, round_id: int, voter: str) -> set[tuple[int, str, str]]:
    """(image_index, model_a, model_b) this voter has voted on in the round."""
    with session_scope(url) as s:
        rows = s.execute(select(ArenaVoteRow.image_index, ArenaVoteRow.model_a, ArenaVoteRow.model_b)
                         .where(ArenaVoteRow.round_id == int(round_id), ArenaVoteRow.voter == voter)).all()
        return {(int(i), a, b) for i, a, b in rows}


def pair_counts(url: str, round_id: int) -> dict[tuple[int, str, str], int]:
    """Votes per (image_index, model_a, model_b) from everyone: the next pair shown is one with few votes."""
    with session_scope(url) as s:
        rows = s.execute(select(ArenaVoteRow.image_index, ArenaVoteRow.model_a, ArenaVoteRow.model_b, func.count())
                         .where(ArenaVoteRow.round_id == int(round_id))
                         .group_by(ArenaVoteRow.image_index, ArenaVoteRow.model_a, ArenaVoteRow.model_b)).all()
        return {(int(i), a, b): int(n) for i, a, b, n in rows}
