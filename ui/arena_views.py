"""The Arena page's views: side by side, blind vote, standings, rounds."""
from __future__ import annotations

import secrets

import pandas as pd
import streamlit as st

from core import charts, services
from core.data.builtin import builtin_image, sample_label, sample_order
from core.data.decode import UPLOAD_EXTENSIONS
from core.services import arena
from core.wording import count
from ui.identity import current_user
from ui.jobs_panel import jobs_panel, launch_status, remember_launch
from ui.state import guarded
from ui.text import plain
from ui.url_state import export_buttons, pick
from ui.widgets import decode_uploads, image_upload_mb

LIVE_EVERY = "3s"
_SIDE, _MATCH = "arena_side", "arena_matchup"


def _kind_title(kind: str) -> str:
    return arena.KINDS[kind].title


def image_source(key: str, many: bool = False, default: str = "Camera") -> list:
    """Images from the camera, an upload or the sample photos; the camera's and the upload's bytes go through
    the same safe decoding (format allowlist, pixel caps, EXIF orientation) as every upload."""
    sources = ["Camera", "Upload", "Sample photo"]
    source = st.radio("Image from", sources, index=sources.index(default), horizontal=True, key=f"{key}_source")
    if source == "Camera":
        shot = st.camera_input("Take a photo", key=f"{key}_camera")
        return decode_uploads([shot] if shot else [])
    if source == "Upload":
        files = st.file_uploader("Images" if many else "Image", type=UPLOAD_EXTENSIONS, accept_multiple_files=many,
                                 key=f"{key}_files", max_upload_size=image_upload_mb())
        return decode_uploads(files if many else ([files] if files else []))
    names = sample_order()
    if many:
        chosen = st.multiselect("Sample photos", names, default=names[:3], key=f"{key}_samples", format_func=sample_label,
                                max_selections=arena.MAX_IMAGES)
        return [builtin_image(n) for n in chosen]
    return [builtin_image(st.selectbox("Sample photo", names, key=f"{key}_sample", format_func=sample_label))]


def kind_settings(kind: str, key: str) -> arena.Settings:
    spec = arena.KINDS[kind]
    c1, c2, c3 = st.columns(3)
    sigma, blur, scale, threshold = 25.0, 2.0, 2, 0.5
    if spec.operation == "denoise":
        sigma = c1.slider("Noise σ (0-255 scale)", 0, 100, 25, key=f"{key}_sigma")
    elif spec.operation == "deblur":
        blur = c1.slider("Blur σ (px)", 0.5, 5.0, 2.0, 0.5, key=f"{key}_blur")
        sigma = c2.slider("Added noise σ", 0, 20, 1, key=f"{key}_blur_noise")
    elif spec.operation == "super-resolution":
        scale = c1.segmented_control("Scale", [2, 3, 4], default=2, key=f"{key}_scale", required=True)
    elif spec.threshold:
        threshold = c1.slider("Score threshold", 0.05, 1.0, 0.5, 0.05, key=f"{key}_threshold")
    side = c3.slider("Working size (long side, px)", arena.MIN_SIDE, arena.MAX_SIDE, 256, step=32, key=f"{key}_side")
    return arena.Settings(sigma=float(sigma), blur_sigma=float(blur), scale=int(scale), score_threshold=float(threshold),
                          max_side=int(side))


def model_choice(kind: str, key: str, settings: arena.Settings, least: int = 1) -> list[str]:
    """Models of the kind that have weights (random weights teach nothing here), at most MAX_MODELS."""
    spec = arena.KINDS[kind]
    infos = [i for i in services.list_model_infos(spec.task, spec.operation)
             if i.weights_status != "missing" and (spec.operation != "super-resolution" or i.scale == settings.scale)]
    if len(infos) < least:
        st.info(f"{spec.title} has {count(len(infos), 'model')} with weights here; at least {least} are needed.")
        return []
    chosen = st.multiselect(f"Models (up to {arena.MAX_MODELS})", infos, default=infos[:min(4, len(infos))],
                            key=f"{key}_models_{kind}_{settings.scale}", format_func=lambda i: i.label,
                            max_selections=arena.MAX_MODELS)
    return [i.name for i in chosen]


# ---- side by side -------------------------------------------------------------------------------------------


def side_view(engine) -> None:
    st.caption("Point your camera at something (or upload a photo) and see up to six models answer it at once.")
    kind = st.selectbox("Task", list(arena.KINDS), key="side_kind", format_func=_kind_title)
    images = image_source("side")
    settings = kind_settings(kind, "side")
    models = model_choice(kind, "side", settings)
    if not images or not models or engine is None:
        return
    image = images[0]
    wanted = (kind, tuple(models), image.sha256, settings, str(engine.device))
    kept = st.session_state.get(_SIDE)
    if kept is None or kept[0] != wanted:  # a re-render of the same answer runs nothing
        with st.spinner("Running every model on the image…"):
            result = guarded(arena.side_by_side, engine, kind, image, models, settings, owner=current_user().name)
        if result is None:
            st.session_state.pop(_SIDE, None)
            return
        st.session_state[_SIDE] = kept = (wanted, result)
    show_answers(kept[1])


def show_answers(result) -> None:
    cols = st.columns(2)
    cols[0].image(result.input, caption="what the models received", width="stretch")
    if result.reference is not None:
        cols[1].image(result.reference, caption="clean image (the scores compare with it)", width="stretch")
    if result.input_scores.get("psnr") is not None:
        st.caption(f"The input itself: PSNR {result.input_scores['psnr']:.2f} dB, SSIM {result.input_scores['ssim']:.4f}.")
    per_row = 3
    for start in range(0, len(result.answers), per_row):
        cols = st.columns(per_row)
        for col, a in zip(cols, result.answers[start:start + per_row]):
            with col:
                st.markdown(f"**{plain(a.title)}**")
                if a.picture is not None:
                    st.image(a.picture, width="stretch")
                if a.top:
                    st.dataframe(pd.DataFrame(a.top, columns=["class", "probability"]), hide_index=True,
                                 column_config={"probability": st.column_config.ProgressColumn(
                                     "probability", format="%.3f", min_value=0.0, max_value=1.0)})
                bits = [f"{a.latency_ms:.0f} ms"]
                if a.scores.get("psnr") is not None:
                    bits.append(f"PSNR {a.scores['psnr']:.2f} dB, SSIM {a.scores['ssim']:.4f}")
                if a.scores.get("lpips") is not None:
                    bits.append(f"LPIPS {a.scores['lpips']:.3f}")
                if a.note:
                    bits.append(a.note)
                st.caption(plain(" · ".join(bits)) + f" · run #{a.run_id}")
    if result.lpips_note:
        st.caption(f"No LPIPS: {plain(result.lpips_note)}")


# ---- rounds -------------------------------------------------------------------------------------------------


STATES = {"open": "open", "closed": "closed", "preparing": "computing its pictures", "failed": "failed"}


def _round_label(r) -> str:
    return f"#{r.id} {r.title} ({arena.kind_title(r)}, {STATES.get(r.status, r.status)})"


def round_picker(open_only: bool, key: str):
    found = guarded(arena.rounds)
    if found is None:
        return None
    found = [r for r in found if r.is_open or (not open_only and r.status == "closed")]
    if not found:
        st.info("No round is open right now. A teacher opens one under Rounds." if open_only else
                "No rounds yet. A teacher opens one under Rounds.")
        return None
    by_id = {r.id: r for r in found}
    chosen = pick("Round", list(by_id), "round", key, format_func=lambda i: _round_label(by_id[i]))  # options: plain text
    return by_id.get(chosen)


def vote_view(engine) -> None:
    found = round_picker(True, "vote_round")
    if found is None:
        return
    user = current_user()
    st.caption(f"{plain(arena.kind_title(found))}: {plain(found.params.get('words', ''))}. Two models' answers to the "
               "same image, names hidden. Which looks better to you? The names show once you have voted on every "
               "pair.")
    flash = st.session_state.pop("arena_flash", None)
    if flash:
        st.success(flash)
    # The pair on screen, kept across reruns; keyed by the round's creation time too, so a pair of a deleted round
    # is never voted into a new round that got its id.
    key = (_MATCH, found.id, found.created_at.isoformat(), user.name)
    match = st.session_state.get(key)
    if match is None:
        match = guarded(arena.next_matchup, found.id, user)
        if match is None:
            _your_votes(found, user)
            return
        st.session_state[key] = match = (secrets.token_hex(4), match)
    token, pair = match
    st.caption(f"Image: {plain(pair.image_name)} · {count(pair.remaining, 'pair')} left for you")
    left, right = st.columns(2)
    left.image(pair.left_png, caption="Left", width="stretch")
    right.image(pair.right_png, caption="Right", width="stretch")
    with st.expander("What the models received"):
        st.image(pair.input_png, width=320)
    # The buttons' keys carry the pair's token: a click on a pair no longer on screen (a double click, a second
    # click after an error) matches no button and votes nothing.
    choice = None
    for col, (label, value) in zip(st.columns(3), [("Left is better", "left"), ("About the same", "tie"),
                                                   ("Right is better", "right")]):
        if col.button(label, key=f"vote_{value}_{token}", width="stretch"):
            choice = value
    if choice is None:
        return
    st.session_state.pop(key, None)  # whatever happens to this vote, the next run shows another pair
    if guarded(arena.vote, found.id, pair.image_index, pair.left, pair.right, choice, user) is None:
        st.button("Show the next pair", key=f"vote_next_{token}")
        return
    st.session_state["arena_flash"] = "Vote stored."
    st.rerun()


def _your_votes(found, user) -> None:
    done = guarded(arena.votes_table, found.id, user, mine=True)
    if done is None:
        return
    st.info(f"You have voted on every pair of this round ({count(len(done), 'vote')}). Thank you! The standings "
            "update as the others vote. Here are your votes, with the names:")
    st.dataframe(done[["image", "model_a", "model_b", "preferred", "shown_left"]].rename(columns=VOTE_COLUMNS),
                 hide_index=True)


VOTE_COLUMNS = {"vote": "Vote #", "voter": "Voter", "image": "Image", "image_sha256": "Image SHA-256",
                "model_a": "Model A", "model_b": "Model B", "preferred": "Preferred", "shown_left": "Shown on the left",
                "time_utc": "Time (UTC)"}


def _done(fn, *args) -> bool:
    return bool(fn(*args))


def rounds_view(engine) -> None:
    user = current_user()
    if user.admin:
        with st.expander("Open a new round", expanded=not guarded(arena.rounds)):
            _open_form(engine)
    else:
        st.caption("Rounds are opened by a teacher (an admin of this server).")
    flash = st.session_state.pop("arena_rounds_flash", None)
    if flash:
        st.success(flash)
    if user.admin:
        with st.expander("Jobs computing rounds' pictures"):
            jobs_panel(arena.JOB_KIND, key="arena_jobs")
    found = guarded(arena.rounds)
    if not found:
        return
    st.subheader("Rounds")
    # while a round's pictures are being computed, the list polls, so the round shows as open when it is
    (st.fragment(run_every=LIVE_EVERY)(_rounds_list) if any(r.status == "preparing" for r in found) else _rounds_list)()


def _rounds_list() -> None:
    user = current_user()
    found = guarded(arena.rounds) or []
    if any(r.status == "preparing" for r in found):
        st.session_state["arena_preparing"] = True
    elif st.session_state.pop("arena_preparing", False):
        st.rerun(scope="app")  # the last round came ready: draw the page again, without polling
    for r in found:
        cols = st.columns([5, 1, 1])
        cols[0].text(f"{_round_label(r)} · {count(len(r.models), 'model')} · by {r.owner or 'nobody'} · "
                     f"{r.params.get('words', '')}")
        if not arena.may_manage(r, user):
            continue
        if r.status in ("open", "closed"):
            action = arena.close_round if r.is_open else arena.reopen_round
            if cols[1].button("Close" if r.is_open else "Reopen", key=f"status_{r.id}"):
                if guarded(action, r.id, user):
                    st.rerun()
        elif r.status == "failed":
            cols[0].error(plain(r.params.get("failure", "computing its pictures failed")))
        if cols[2].button("Delete", key=f"delete_{r.id}", icon=":material/delete:"):
            st.session_state["arena_confirm"] = r.id
        if st.session_state.get("arena_confirm") == r.id:
            st.warning(f"Delete round #{r.id} with its pictures and all its votes? This cannot be undone.")
            if st.button("Yes, delete it", key=f"delete_yes_{r.id}", type="primary"):
                st.session_state.pop("arena_confirm", None)
                if guarded(_done, arena.delete_round, r.id, user):
                    st.session_state["arena_rounds_flash"] = f"Deleted round #{r.id}."
                    st.rerun()


def _open_form(engine) -> None:
    title = st.text_input("Title", max_chars=120, key="round_title", placeholder="e.g. Denoising, Monday's class")
    kind = st.selectbox("Task", arena.VOTABLE, key="round_kind", format_func=_kind_title)
    images = image_source("round", many=True, default="Sample photo")
    settings = kind_settings(kind, "round")
    models = model_choice(kind, "round", settings, least=2)
    st.caption(f"Every model runs once on every image (up to {arena.MAX_IMAGES} images), in a background job; the "
               "round opens when it is done, and everyone then sees and votes on the same pictures.")
    if st.button("Open round", type="primary", key="round_open", disabled=engine is None):
        launched = guarded(arena.submit_round, title=title, kind=kind, images=images, models=models,
                           settings=settings, device=st.session_state.get("device", "auto"), user=current_user())
        if launched is not None:
            round_id, job_id = launched
            st.query_params["round"] = str(round_id)
            remember_launch("arena_jobs", [job_id])
    launch_status("arena_jobs")


# ---- standings ----------------------------------------------------------------------------------------------

COLUMNS = {"rank": "Rank", "model": "Model", "rating": "Rating (Elo points)", "low": "95% interval, low",
           "high": "95% interval, high", "votes": "Votes", "win_rate": "Win rate (ties half)", "psnr": "PSNR (dB)",
           "ssim": "SSIM", "lpips": "LPIPS (lower is closer)", "latency_ms": "Latency (ms)"}


def standings_view(engine) -> None:
    found = round_picker(False, "stand_round")
    if found is None:
        return
    st.caption(f"{plain(arena.kind_title(found))}: {plain(found.params.get('words', ''))}. "
               + ("Updates every few seconds while the round is open." if found.is_open else "The round is closed."))
    (st.fragment(run_every=LIVE_EVERY)(_standings) if found.is_open else _standings)(found)


def _standings(shown) -> None:
    """The standings of the round as it is now (the polling fragment reloads it: a round closed or deleted since
    the page was drawn redraws the whole page, which then stops polling)."""
    status = guarded(arena.round_status, shown.id, shown.created_at)
    if status is None:  # the store is busy: the message is shown, the next poll tries again
        return
    if status != shown.status:
        st.rerun(scope="app")
    found = shown
    result = guarded(arena.standings, found.id)
    if result is None:
        return
    user = current_user()
    st.metric("Votes", f"{result.votes} from {count(result.voters, 'person', 'people')}")
    table = result.table.copy()
    shown_cols = [c for c in COLUMNS if c in table.columns and (table[c].notna().any() or c in ("rank", "model"))]
    view = table[shown_cols].rename(columns=COLUMNS)
    st.dataframe(view, hide_index=True, column_config={
        COLUMNS["rating"]: st.column_config.NumberColumn(format="%.0f"),
        COLUMNS["low"]: st.column_config.NumberColumn(format="%.0f"),
        COLUMNS["high"]: st.column_config.NumberColumn(format="%.0f"),
        COLUMNS["win_rate"]: st.column_config.NumberColumn(format="%.2f"),
        COLUMNS["psnr"]: st.column_config.NumberColumn(format="%.2f"),
        COLUMNS["ssim"]: st.column_config.NumberColumn(format="%.4f"),
        COLUMNS["lpips"]: st.column_config.NumberColumn(format="%.3f"),
        COLUMNS["latency_ms"]: st.column_config.NumberColumn(format="%.0f")})
    st.caption("Bradley-Terry ratings (ties count half a win each), 95% intervals from 1000 parametric bootstrap "
               "resamples; 400 points apart means 10:1 odds of being preferred. A model nobody has compared yet has "
               "no rating.")
    export_buttons(view, f"round-{found.id}-standings", "arena_standings")
    metric = "psnr" if table["psnr"].notna().any() else None
    st.plotly_chart(charts.preference_figure(table, metric, COLUMNS["psnr"]), key="arena_ratings")
    if result.left_share is not None:
        st.caption(f"The left picture won {result.left_share:.0%} of the decisive votes (50% means no side bias).")
    if result.agreements:
        st.markdown("**Do people and the metrics agree?**")
        for a in result.agreements:
            st.text(a.sentence())
    elif not arena.KINDS[found.operation].reference:
        st.caption("This task has no reference image here, so there are no PSNR/SSIM scores to compare with.")
    if found.params.get("lpips_missing"):
        st.caption(f"No LPIPS: {plain(found.params['lpips_missing'])}")
    if result.disagreements:
        if found.is_open and not arena.may_manage(found, user):
            st.caption("Where people and the metric disagree, with the pictures, shows here once the round is "
                       "closed (the pictures would give the names away).")
        else:
            _disagreements(found, result.disagreements)
    votes = guarded(arena.votes_table, found.id, user)
    if votes is not None:
        st.markdown("**Votes**")
        export_buttons(votes.rename(columns=VOTE_COLUMNS), f"round-{found.id}-votes", "arena_votes")


def _disagreements(found, items) -> None:
    st.markdown("**Where people and the metric disagree most**")
    pics = arena.pictures(found)
    for d in items:
        preferred, other = arena.title_of(found, d.preferred), arena.title_of(found, d.other)
        unit = " dB" if d.metric == "psnr" else ""
        st.text(f"{d.image_name}: {d.share:.0%} of {count(d.votes, 'vote')} preferred {preferred} "
                f"({d.metric.upper()} {d.preferred_value:.3f}{unit}) over {other} ({d.other_value:.3f}{unit}).")
        cols = st.columns(3)
        cols[0].image(pics[(d.image_index, "output", d.preferred)].png, caption=f"preferred: {plain(preferred)}",
                      width="stretch")
        cols[1].image(pics[(d.image_index, "output", d.other)].png, caption=f"higher {d.metric.upper()}: {plain(other)}",
                      width="stretch")
        reference = pics.get((d.image_index, "reference", ""))
        if reference is not None:
            cols[2].image(reference.png, caption="clean image", width="stretch")


VIEWS = {"side": ("Side by side", side_view), "vote": ("Vote", vote_view), "standings": ("Standings", standings_view),
         "rounds": ("Rounds", rounds_view)}
