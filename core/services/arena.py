"""The arena's rounds: a teacher opens a round (a fixed set of images, a pool of models, the task's settings), the
app computes every model's output on every image once and keeps them in the store, people vote blind between two
outputs of the same image, and the standings put Bradley-Terry ratings beside PSNR/SSIM/LPIPS.

Who may do what: anyone signed in votes (once per pair of models and image) and sees the standings; opening a
round is for admins (the teacher), closing or deleting it for its owner or an admin. Per-voter names are in the
export only for the round's owner and admins; everyone else gets the votes without names."""
from __future__ import annotations

import functools
import io
import random
import threading
import time
from collections import defaultdict
import secrets
from dataclasses import asdict, dataclass, replace
from itertools import combinations
from typing import Any
from collections.abc import Callable

import numpy as np
import pandas as pd
from PIL import Image

from core.data.decode import DecodedImage, check_request, decode_image
from core.benchmark.run import require_weights
from core.engine import Engine, pick_device
from core.jobs import runner
from core.jobs.handlers import handler
from core.errors import InvalidInput
from core.metrics import preference
from core.metrics.registry import higher_is_better
from core.services.arena_answers import (KINDS, MAX_MODELS, MAX_SIDE, MIN_SIDE, VOTABLE, Settings,  # noqa: F401 (the page's)
                                         check_models, model_titles, side_by_side, working)
from core.store import ensure_store
from core.users import NotAllowed, User, acting, auth_settings, require
from db import arena as rows

MAX_IMAGES = 6
JOB_KIND = "arena_round"
MAX_ROUNDS_PER_OWNER = 10  # a full round at 512 px is about 19 MB of PNG in the store
CHOICES = ("left", "right", "tie")
METRICS = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("lpips", "LPIPS"))


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def png_pixels(data: bytes) -> np.ndarray:
    """A stored picture back as pixels, through the same safe decoder as uploads."""
    return decode_image(data, "picture").pixels


# ---- rounds -------------------------------------------------------------------------------------------------


def prepare_round(*, title: str, kind: str, images: list[DecodedImage], models: list[str],
                  settings: Settings = Settings(), user: User | None = None) -> int:
    """Check everything and store the round with its images at working size, "preparing" (no votes yet): the
    outputs come from fill_round, here or in a job. Admins only; refused whole before anything is stored."""
    user = acting(user)
    if not user.admin:
        raise NotAllowed("Only a teacher (an admin of this server) can open a round.")
    title = " ".join(str(title).split())[:120]
    if not title:
        raise InvalidInput("Give the round a title.")
    spec = check_models(kind, models)
    if kind not in VOTABLE:
        raise InvalidInput(f"{spec.title} answers are words, not pictures, so they cannot be voted on blind.")
    if len(models) < 2:
        raise InvalidInput("A round compares at least two models.")
    if not images:
        raise InvalidInput("Add at least one image to the round.")
    if len(images) > MAX_IMAGES:
        raise InvalidInput(f"A round holds at most {MAX_IMAGES} images; {len(images)} were given.")
    if len({img.sha256 for img in images}) != len(images):
        raise InvalidInput("The same image was added twice.")
    check_request(images)
    settings.check()
    if spec.operation == "denoise" and settings.sigma <= 0:
        raise InvalidInput("A denoising round needs noise: choose a noise σ above 0.")
    require_weights(models, allow_random=False)  # random weights teach nothing here
    url = ensure_store()
    if rows.count_rounds(url, user.name) >= MAX_ROUNDS_PER_OWNER:
        raise InvalidInput(f"You have {MAX_ROUNDS_PER_OWNER} rounds stored; delete an old one first.")
    # A fresh noise seed per round (not shown in the settings' words), so two rounds at the same σ differ. It does
    # not make the round secret: a run's provenance (Results) records it, and anyone can feed a round's input
    # picture to Side by side. The vote keeps names off the screen for honest voters; it is not a lock.
    settings = replace(settings, seed=secrets.randbelow(2**31))
    sources = []
    for index, image in enumerate(images):
        small = working(image, settings.max_side)
        sources.append(rows.Picture(index, small.name, small.sha256, "source", "", png_bytes(small.pixels),
                                    {"format": small.source_format}, None))
    params = {**asdict(settings), "words": settings.words(kind, seed=False)}
    return rows.create_round(url, title=title, owner=user.name, task=spec.task, operation=kind, params=params,
                             models=list(models), titles=model_titles(spec), pictures=sources, status="preparing")


def fill_round(engine: Engine, round_id: int, progress: Callable[..., None] | None = None) -> list[int]:
    """Every model's output on every image of a preparing round, stored; then the round opens. Returns the runs
    stored (one per model and image). On failure the round is marked failed, with the reason."""
    found = get_round(round_id)
    if found.status != "preparing":
        raise InvalidInput(f"Round #{found.id} is {found.status}, not waiting for its pictures.")
    url = ensure_store()
    sources = sorted((p for p in rows.pictures(url, found.id) if p.role == "source"), key=lambda p: p.image_index)
    settings = Settings(**{k: found.params[k] for k in Settings.__dataclass_fields__})
    pictures: list[rows.Picture] = []
    run_ids: list[int] = []
    lpips_note = ""
    try:
        for n, src in enumerate(sources):
            if progress is not None:
                progress(n / len(sources), f"image {n + 1} of {len(sources)}: {src.image_name}", force=True)
            image = DecodedImage(src.image_name, png_pixels(src.png), src.scores.get("format", "PNG"), "RGB",
                                 src.image_sha)
            answer = side_by_side(engine, found.operation, image, found.models, settings, owner=found.owner)
            i, name, sha = src.image_index, src.image_name, src.image_sha
            pictures.append(rows.Picture(i, name, sha, "input", "", png_bytes(answer.input),
                                         {k: v for k, v in answer.input_scores.items() if v is not None}, None))
            if answer.reference is not None:
                pictures.append(rows.Picture(i, name, sha, "reference", "", png_bytes(answer.reference), {}, None))
            for a in answer.answers:
                assert a.picture is not None
                pictures.append(rows.Picture(i, name, sha, "output", a.model, png_bytes(a.picture),
                                             {**a.scores, "latency_ms": a.latency_ms}, a.run_id))
                run_ids.append(a.run_id)
            lpips_note = lpips_note or answer.lpips_note
        rows.finish_round(url, found.id, pictures, {"lpips_missing": lpips_note}, status="open")
    except Exception as exc:
        rows.finish_round(url, found.id, [], {"failure": str(exc)[:500]}, status="failed")
        raise
    if progress is not None:
        progress(1.0, "the round is open", force=True)
    return run_ids


def open_round(engine: Engine, *, title: str, kind: str, images: list[DecodedImage], models: list[str],
               settings: Settings = Settings(), user: User | None = None) -> int:
    """prepare_round and fill_round here and now (the command line, tests, benchmarks); the page uses submit_round."""
    round_id = prepare_round(title=title, kind=kind, images=images, models=models, settings=settings, user=user)
    fill_round(engine, round_id)
    return round_id


def submit_round(*, title: str, kind: str, images: list[DecodedImage], models: list[str],
                 settings: Settings = Settings(), device: str = "cpu", user: User | None = None) -> tuple[int, int]:
    """prepare_round, then a background job computes the pictures (the round opens when it is done).
    Returns (round id, job id)."""
    user = acting(user)
    runner.check_job_room(user.name)
    round_id = prepare_round(title=title, kind=kind, images=images, models=models, settings=settings, user=user)
    slot = str(pick_device(device))
    try:
        job_id = runner.submit(JOB_KIND, {"round": round_id, "device": slot},
                               title=f"Arena round #{round_id}: {get_round(round_id).title}", device=slot,
                               owner=user.name)
    except Exception:
        rows.delete_round(ensure_store(), round_id)
        raise
    rows.add_params(ensure_store(), round_id, {"job": job_id})
    return round_id, job_id


@handler(JOB_KIND)
def _fill_round_job(job_params: dict[str, Any], ctx) -> dict[str, Any]:
    run_ids = fill_round(Engine(job_params.get("device", "cpu")), int(job_params["round"]), ctx.progress)
    return {"round": int(job_params["round"]), "run_ids": run_ids}


STOPPED = "its job stopped before the pictures were done (cancelled, or its worker died); delete the round and open it again"


def rounds() -> list[rows.Round]:
    """Newest first. A round still preparing whose job has ended (cancelled, killed: no exception handler ran in
    the worker) is marked failed here, so it never stays "computing its pictures" for good."""
    url = ensure_store()
    found = rows.rounds(url)
    stuck = [r for r in found if r.status == "preparing" and r.params.get("job") is not None
             and _job_ended(int(r.params["job"]))]
    for r in stuck:
        rows.finish_round(url, r.id, [], {"failure": STOPPED}, status="failed")
    return rows.rounds(url) if stuck else found


def _job_ended(job_id: int) -> bool:
    try:
        job = runner.status(job_id)
    except InvalidInput:  # the job row is gone
        return True
    return not job.active and job.status != "queued"


def get_round(round_id: int) -> rows.Round:
    found = rows.get_round(ensure_store(), int(round_id))
    if found is None:
        raise InvalidInput(f"There is no round #{int(round_id)}; it may have been deleted.")
    return found


def round_status(round_id: int, created_at=None) -> str:
    """open, closed, or deleted (also when the id now names a newer round than the one created at `created_at`)."""
    found = rows.get_round(ensure_store(), int(round_id))
    if found is None or (created_at is not None and found.created_at != created_at):
        return "deleted"
    return found.status


def _switch(round_id: int, user: User | None, verb: str, before: str, after: str) -> bool:
    found = get_round(round_id)
    require(acting(user), found.owner, f"{verb} round #{found.id}")
    if found.status != before:
        raise InvalidInput(f"Round #{found.id} is {found.status}; only a round that is {before} can be {verb}d.")
    rows.set_status(ensure_store(), found.id, after)
    return True


def close_round(round_id: int, user: User | None = None) -> bool:
    return _switch(round_id, user, "close", "open", "closed")


def reopen_round(round_id: int, user: User | None = None) -> bool:
    return _switch(round_id, user, "reopen", "closed", "open")


def delete_round(round_id: int, user: User | None = None) -> bool:
    found = get_round(round_id)
    require(acting(user), found.owner, f"delete round #{found.id}")
    if found.status == "preparing" and found.params.get("job") is not None:
        runner.cancel(int(found.params["job"]))  # its work would go to nothing; False when it has just ended
    rows.delete_round(ensure_store(), found.id)
    return True


def signed_in_server() -> bool:
    """Whether people sign in here (proxy or OIDC): without it everyone is the one local user, one voter."""
    return auth_settings().mode != "none"


def may_manage(found: rows.Round, user: User | None = None) -> bool:
    u = acting(user)
    return u.admin or (bool(found.owner) and found.owner == u.name)


def display_titles(found: rows.Round) -> list[str]:
    """The round's models by title, in its order; a title two models share gets the model's name added."""
    titles = [found.titles.get(m, m) for m in found.models]
    return [f"{t} ({m})" if titles.count(t) > 1 else t for t, m in zip(titles, found.models)]


def title_of(found: rows.Round, model: str) -> str:
    """A model's title as the round shows it (unique within the round)."""
    return dict(zip(found.models, display_titles(found))).get(model, model)


def kind_title(found: rows.Round) -> str:
    return KINDS[found.operation].title if found.operation in KINDS else found.operation


@functools.lru_cache(maxsize=4)  # PNG bytes: up to ~19 MB a round
def _pictures(url: str, round_id: int, created: str, status: str) -> dict[tuple[int, str, str], rows.Picture]:
    """A round's pictures by (image_index, role, model). They change once, when a preparing round gets its outputs:
    the key carries the status (and the creation time, so a round with a reused id is never served old ones)."""
    return {(p.image_index, p.role, p.model): p for p in rows.pictures(url, round_id)}


def pictures(found: rows.Round) -> dict[tuple[int, str, str], rows.Picture]:
    settled = "ready" if found.status in ("open", "closed") else found.status
    return _pictures(ensure_store(), found.id, found.created_at.isoformat(), settled)


def images(found: rows.Round) -> list[tuple[int, str]]:
    return sorted({(i, p.image_name) for (i, role, _), p in pictures(found).items() if role == "input"})


# ---- votes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matchup:
    """Two anonymous outputs of the same image, in the order shown."""

    round_id: int
    image_index: int
    image_name: str
    left: str
    right: str
    left_png: bytes
    right_png: bytes
    input_png: bytes
    remaining: int  # pairs this voter has not voted on yet, this one included


def _open(round_id: int) -> rows.Round:
    """The round, if it takes votes now; otherwise why not."""
    found = get_round(round_id)
    if not found.is_open:
        raise InvalidInput({"closed": f"Round #{found.id} is closed; its votes are final.",
                            "preparing": f"Round #{found.id} is not open yet: its pictures are being computed.",
                            }.get(found.status, f"Round #{found.id} failed to compute its pictures; it takes no votes."))
    return found


def _pairs(found: rows.Round) -> list[tuple[int, str, str]]:
    have = pictures(found)
    models = sorted(found.models)
    return [(i, a, b) for i, _ in images(found) for a, b in combinations(models, 2)
            if (i, "output", a) in have and (i, "output", b) in have]


def next_matchup(round_id: int, user: User | None = None, rng: random.Random | None = None) -> Matchup | None:
    """A pair this voter has not voted on, among those with the fewest votes from everyone (so votes spread over
    all pairs), its sides in random order. None when the voter has voted on every pair."""
    voter = acting(user).name
    found = _open(round_id)
    url = ensure_store()
    done = rows.voted(url, found.id, voter)
    left_to_vote = [p for p in _pairs(found) if p not in done]
    if not left_to_vote:
        return None
    counts = rows.pair_counts(url, found.id)
    fewest = min(counts.get(p, 0) for p in left_to_vote)
    rng = rng or random.Random()
    i, a, b = rng.choice([p for p in left_to_vote if counts.get(p, 0) == fewest])
    if rng.random() < 0.5:
        a, b = b, a
    have = pictures(found)
    return Matchup(found.id, i, have[(i, "input", "")].image_name, a, b, have[(i, "output", a)].png,
                   have[(i, "output", b)].png, have[(i, "input", "")].png, len(left_to_vote))


def vote(round_id: int, image_index: int, left: str, right: str, choice: str, user: User | None = None) -> bool:
    """Store one blind vote: `choice` is left, right or tie for the pair as it was shown. True once stored."""
    voter = acting(user).name
    found = _open(round_id)
    if choice not in CHOICES:
        raise InvalidInput(f"A vote is one of {', '.join(CHOICES)}.")
    have = pictures(found)
    if left == right or left not in found.models or right not in found.models or \
            (int(image_index), "output", left) not in have or (int(image_index), "output", right) not in have:
        raise InvalidInput("That pair of pictures is not part of this round.")
    a, b = sorted((left, right))
    winner = "tie" if choice == "tie" else ("a" if (left if choice == "left" else right) == a else "b")
    sha = have[(int(image_index), "input", "")].image_sha
    outcome = rows.add_vote(ensure_store(), rows.NewVote(found.id, int(image_index), sha, a, b, winner, left, voter))
    if outcome == "duplicate":
        raise InvalidInput("You already voted on this pair for this image; each person votes once per pair.")
    if outcome == "closed":
        raise InvalidInput(f"Round #{found.id} was closed just now; its votes are final.")
    if outcome == "gone":
        raise InvalidInput(f"Round #{found.id} was deleted just now.")
    return True


# ---- standings ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    image_index: int
    image_name: str
    preferred: str  # the model people preferred
    other: str
    share: float  # of votes for `preferred`, ties counted half
    votes: int
    wins: int  # votes for `preferred`
    ties: int
    metric: str
    preferred_value: float
    other_value: float


@dataclass(frozen=True)
class Standings:
    table: pd.DataFrame  # one row per model, best rated first
    agreements: list[preference.Agreement]
    disagreements: list[Disagreement]
    votes: int
    voters: int
    left_share: float | None  # share of decisive votes that went to the left picture (a side bias check)


def _metric_means(found: rows.Round) -> dict[str, dict[str, float | None]]:
    """Mean of each score over the round's images, per model (PSNR: inf when any image is restored exactly; the
    rank agreement counts that as the best value)."""
    out: dict[str, dict[str, float | None]] = {}
    for metric, _ in METRICS + (("latency_ms", ""),):
        for model in found.models:
            vals = [p.scores.get(metric) for (i, role, m), p in pictures(found).items() if role == "output" and m == model]
            finite = [float(v) for v in vals if v is not None]
            out.setdefault(metric, {})[model] = float(np.mean(finite)) if finite and len(finite) == len(vals) else None
    return out


MIN_PAIR_VOTES = 3  # a pair's votes before its disagreement with the metric is shown


def _disagreements(found: rows.Round, votes: pd.DataFrame, limit: int = 5) -> list[Disagreement]:
    """Pairs (per image) where most voters preferred the model with the worse PSNR (or SSIM when PSNR ties), the
    clearest first: by the lower end of the Wilson interval of the preferred share, so 9 of 10 votes ranks above
    1 of 1."""
    have = pictures(found)
    tally = votes.assign(a=votes.winner == "a", tie=votes.winner == "tie").groupby(
        ["image_index", "model_a", "model_b"]).agg(n=("winner", "size"), a=("a", "sum"), tie=("tie", "sum"))
    out = []
    for (i, a, b), n, wins_a, ties in zip(tally.index, tally.n, tally.a, tally.tie):
        share_a = float((wins_a + 0.5 * ties) / n)
        if share_a == 0.5 or n < MIN_PAIR_VOTES:
            continue
        preferred, other = (a, b) if share_a > 0.5 else (b, a)
        for metric, _ in METRICS[:2]:
            pv, ov = have[(i, "output", preferred)].scores.get(metric), have[(i, "output", other)].scores.get(metric)
            if pv is None or ov is None or pv == ov:
                continue
            if pv < ov:
                wins = int(wins_a) if preferred == a else int(n - wins_a - ties)
                out.append(Disagreement(int(i), have[(i, "input", "")].image_name, preferred, other,
                                        max(share_a, 1 - share_a), int(n), wins, int(ties), metric, float(pv), float(ov)))
            break
    out.sort(key=lambda d: (-preference.wilson_lower(d.share, d.votes), d.image_index, d.preferred))
    return out[:limit]


@functools.lru_cache(maxsize=32)
def _standings(url: str, round_id: int, created: str, state: tuple[int, int]) -> Standings:
    """Cached by the round's vote state (count, newest id): a room polling the page recomputes only when a vote
    came in."""
    found = get_round(round_id)
    votes = rows.votes(url, round_id)
    models = list(found.models)
    index = {m: k for k, m in enumerate(models)}
    fitted = preference.ratings(models, [preference.Vote(index[a], index[b], w) for a, b, w in
                                         zip(votes.model_a, votes.model_b, votes.winner)], seed=round_id)
    means = _metric_means(found)
    compared = fitted.votes > 0  # a model nobody has compared yet has no rating, only the prior's 1000
    table = pd.DataFrame({
        "model": display_titles(found),
        "rating": np.where(compared, fitted.rating, np.nan), "low": fitted.low, "high": fitted.high,
        "votes": fitted.votes.astype(int),
        "win_rate": np.where(fitted.votes > 0, fitted.wins / np.maximum(fitted.votes, 1), np.nan),
        **{metric: [means[metric][m] for m in models] for metric, _ in METRICS + (("latency_ms", ""),)},
    })
    order = [i for i in fitted.order() if compared[i]] + [i for i in fitted.order() if not compared[i]]
    table = table.iloc[order].reset_index(drop=True)
    ranked = int(compared.sum())
    table.insert(0, "rank", [float(r) for r in range(1, ranked + 1)] + [np.nan] * (len(table) - ranked))
    rating = {m: r for m, r, c in zip(models, fitted.rating, compared) if c}
    agreements = [preference.agreement(label, rating, means[metric], bool(higher_is_better(metric)))
                  for metric, label in METRICS if any(v is not None for v in means[metric].values())]
    decisive = votes[votes.winner != "tie"]
    left_wins = ((decisive.winner == "a") == (decisive.left == decisive.model_a)).sum()
    return Standings(table, agreements, _disagreements(found, votes) if len(votes) else [], len(votes),
                     int(votes.voter.nunique()), float(left_wins / len(decisive)) if len(decisive) else None)


FRESH_S = 1.0  # standings at most this old are served as they are: a room polling every few seconds while votes
# pour in then costs one computation per second per round, not one per poll
WAIT_S = 5.0  # a poll waits this long for another session's computation, then shows the last standings
_LATEST: dict[tuple[str, int, str], tuple[float, Standings]] = {}
_COMPUTING: defaultdict[tuple[str, int, str], threading.Lock] = defaultdict(threading.Lock)


def standings(round_id: int, *, fresh_s: float = FRESH_S) -> Standings:
    """The round's standings, at most `fresh_s` seconds old (0: as of now). One session computes them while the
    others polling the same round wait for that result."""
    found = get_round(round_id)
    url = ensure_store()
    key = (url, found.id, found.created_at.isoformat())
    lock = _COMPUTING[key]
    if not lock.acquire(timeout=WAIT_S):  # another session is computing them (or waits on a busy store)
        hit = _LATEST.get(key)
        if hit is not None:
            return hit[1]  # the last ones, until the next poll
        raise InvalidInput("The standings are being computed; they show at the next refresh.")
    try:
        hit = _LATEST.get(key)
        if hit is not None and time.monotonic() - hit[0] < fresh_s:
            return hit[1]
        board = _standings(*key, rows.vote_state(url, found.id))
        _LATEST[key] = (time.monotonic(), board)
        while len(_LATEST) > 64:  # rounds polled at once; the oldest entry goes
            _LATEST.pop(next(iter(_LATEST)))
        return board
    finally:
        lock.release()


def votes_table(round_id: int, user: User | None = None, *, mine: bool = False) -> pd.DataFrame:
    """The round's votes in words, for export: image, the two models, which one won (or tie), which was shown on
    the left, when; the voter's name only for the round's owner and admins. `mine`: only the user's own votes."""
    found = get_round(round_id)
    votes = rows.votes(ensure_store(), found.id)
    if mine:
        votes = votes[votes.voter == acting(user).name].reset_index(drop=True)
    names = dict(images(found))
    out = pd.DataFrame({
        "vote": votes.id,
        "image": [names.get(i, str(i)) for i in votes.image_index],
        "image_sha256": votes.image_sha,
        "model_a": [title_of(found, m) for m in votes.model_a],
        "model_b": [title_of(found, m) for m in votes.model_b],
        "preferred": [title_of(found, a if w == "a" else b) if w != "tie" else "tie"
                      for a, b, w in zip(votes.model_a, votes.model_b, votes.winner)],
        "shown_left": [title_of(found, m) for m in votes.left],
        "time_utc": votes.created_at,
    })
    if may_manage(found, user):
        out.insert(1, "voter", votes.voter)
    return out


def vote_count(round_id: int) -> int:
    return rows.vote_state(ensure_store(), int(round_id))[0]


def pair_total(found: rows.Round) -> int:
    return len(_pairs(found))
