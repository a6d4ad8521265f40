"""The Arena page's views: side by side, blind vote, standings, rounds."""
from __future__ import annotations

import re
import secrets
from dataclasses import replace

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

LIVE_EVERY = "5s"
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
        sigma = c1.slider("Noise σ (0-255 scale)", 1, 100, 25, key=f"{key}_sigma")
    elif spec.operation == "deblur":
        blur = c1.slider("Blur σ (px)", 0.5, 5.0, 2.0, 0.5, key=f"{key}_blur")
        sigma = c2.slider("Added noise σ (0-255 scale)", 0, 20, 1, key=f"{key}_blur_noise")
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
    label = f"Models ({least} to {arena.MAX_MODELS})" if least > 1 else f"Models (up to {arena.MAX_MODELS})"
    chosen = st.multiselect(label, infos, default=infos[:min(4, len(infos))],
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
    # Answers kept per model for this image, task and settings: a re-render runs nothing, and a model added to the
    # choice runs alone.
    base = (kind, image.sha256, settings, str(engine.device))
    kept = st.session_state.get(_SIDE)
    if kept is None or kept["base"] != base:
        kept = {"base": base, "answers": {}, "frame": None}
    missing = [m for m in models if m not in kept["answers"]]
    if missing:
        with st.spinner(f"Running {count(len(missing), 'model')} on the image…"):
            result = guarded(arena.side_by_side, engine, kind, image, missing, settings, owner=current_user().name)
        if result is None:
            return
        kept["answers"].update({a.model: a for a in result.answers})
        kept["frame"] = result
        st.session_state[_SIDE] = kept
    show_answers(replace(kept["frame"], answers=[kept["answers"][m] for m in models]))


def picture(where, pixels, caption: str = "") -> None:
    """A picture as PNG: Streamlit's default would send a JPEG, whose artefacts are what restoration is judged on."""
    where.image(pixels, caption=caption, width="stretch", output_format="PNG")


def lpips_missing(note: str) -> None:
    """Why there is no LPIPS: the server-side fix for admins, a plain fact for everyone else."""
    if note:
        st.caption(f"No LPIPS: {plain(note)}" if current_user().admin else "LPIPS is not available on this server.")


def show_answers(result) -> None:
    cols = st.columns(2)
    picture(cols[0], result.input, "what the models received")
    if result.reference is not None:
        picture(cols[1], result.reference, "clean image (the scores compare with it)")
    if result.input_scores.get("psnr") is not None:
        st.caption(f"The input itself: PSNR {result.input_scores['psnr']:.2f} dB, SSIM {result.input_scores['ssim']:.4f}.")
    per_row = 3
    for start in range(0, len(result.answers), per_row):
        cols = st.columns(per_row)
        for col, a in zip(cols, result.answers[start:start + per_row]):
            with col:
                st.markdown(f"**{plain(a.title)}**")
                if a.picture is not None:
                    picture(st, a.picture)
                if a.top:
                    top = pd.DataFrame([(p, label) for label, p in a.top], columns=["probability", "class"])
                    st.dataframe(top, hide_index=True, column_config={"probability": st.column_config.ProgressColumn(
                        "probability", format="%.3f", min_value=0.0, max_value=1.0, width="small")})
                bits = [f"{a.latency_ms:.0f} ms"]
                if a.scores.get("psnr") is not None:
                    bits.append(f"PSNR {a.scores['psnr']:.2f} dB, SSIM {a.scores['ssim']:.4f}")
                if a.scores.get("lpips") is not None:
                    bits.append(f"LPIPS {a.scores['lpips']:.3f}")
                if a.note:
                    bits.append(a.note)
                st.caption(plain(" · ".join(bits)))
                st.page_link("pages/results.py", label=f"Stored as run #{a.run_id}", query_params={"run": a.run_id})
    lpips_missing(result.lpips_note)


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


def go_to(view: str, round_id: int, label: str, key: str) -> None:
    """A button to another view of this page (a page link to the same page would keep the view's widget as it is)."""
    def switch() -> None:
        st.session_state["arena_view"] = view
        st.query_params["view"] = view
        st.query_params["round"] = str(round_id)
        for picker in ("vote_round", "stand_round"):
            st.session_state.pop(picker, None)
    st.button(label, key=key, on_click=switch, icon=":material/leaderboard:")


def one_person_note() -> None:
    if not arena.signed_in_server():
        st.caption("This server runs without sign-in, so everyone here votes as the same person (and as its admin). "
                   "For a class, host it with sign-in (README, Hosting for a class): one vote per person.")


def vote_view(engine) -> None:
    one_person_note()
    linked = st.query_params.get("round", "")
    if re.fullmatch(r"[0-9]{1,9}", linked) and guarded(arena.round_status, int(linked)) == "closed":
        st.info(f"Round #{int(linked)} is closed: its votes are final.")
        go_to("standings", int(linked), f"Standings of round #{int(linked)}", "vote_closed_standings")
        del st.query_params["round"]  # the picker below offers the rounds open now
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
    # A and B, not left and right: on a phone the two columns stack
    first, second = st.columns(2)
    picture(first, pair.left_png, "A")
    picture(second, pair.right_png, "B")
    # The buttons' keys carry the pair's token: a click on a pair no longer on screen (a double click, a second
    # click after an error) matches no button and votes nothing.
    choice = None
    for col, (label, value) in zip(st.columns(3), [("A is better", "left"), ("About the same", "tie"),
                                                   ("B is better", "right")]):
        if col.button(label, key=f"vote_{value}_{token}", width="stretch"):
            choice = value
    with st.expander("What the models received"):
        st.image(pair.input_png, width=320, output_format="PNG")
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
    go_to("standings", found.id, "Standings of this round", "vote_done_standings")


VOTE_COLUMNS = {"vote": "Vote #", "voter": "Voter", "image": "Image", "image_sha256": "Image SHA-256",
                "model_a": "Model 1", "model_b": "Model 2", "preferred": "Preferred", "shown_left": "Shown as A",
                "time_utc": "Time (UTC)"}


def _done(fn, *args) -> bool:
    return bool(fn(*args))


def rounds_view(engine) -> None:
    user = current_user()
    one_person_note()
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
        votes = f" · {count(arena.vote_count(r.id), 'vote')}" if r.status in ("open", "closed") else ""
        cols[0].text(f"{_round_label(r)} · {count(len(r.models), 'model')} · by {r.owner or 'nobody'} · "
                     f"{r.params.get('words', '')}{votes}")
        if r.is_open:
            cols[0].caption(f"Link for the class: /arena?view=vote&round={r.id}")
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
            yes, no = st.columns(2)
            if yes.button("Yes, delete it", key=f"delete_yes_{r.id}", type="primary"):
                st.session_state.pop("arena_confirm", None)
                if guarded(_done, arena.delete_round, r.id, user):
                    st.session_state["arena_rounds_flash"] = f"Deleted round #{r.id}."
                    st.rerun()
            if no.button("Cancel", key=f"delete_no_{r.id}"):
                st.session_state.pop("arena_confirm", None)
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
           "high": "95% interval, high", "votes": "Comparisons", "win_rate": "Win rate (ties half)", "psnr": "PSNR (dB)",
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
    if not result.votes:
        st.info("No votes yet. Share the link of the Vote view of this round; the standings fill in as people vote.")
        st.code(f"/arena?view=vote&round={found.id}", language=None)
        return
    table = result.table.copy()
    shown_cols = [c for c in COLUMNS if c in table.columns and (table[c].notna().any() or c in ("rank", "model"))]
    view = table[shown_cols].rename(columns=COLUMNS)
    st.dataframe(view, hide_index=True, column_config={
        COLUMNS["rank"]: st.column_config.NumberColumn(format="%d", help="Models nobody has compared yet have none."),
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
    st.plotly_chart(charts.preference_figure(table), key="arena_ratings")
    if result.left_share is not None:
        st.caption(f"Picture A (shown first) won {result.left_share:.0%} of the decisive votes (50% means no "
                   "position bias).")
    if result.agreements:
        st.markdown("**Do people and the metrics agree?**")
        for a in result.agreements:
            st.text(a.sentence())
    elif not arena.KINDS[found.operation].reference:
        st.caption("This task has no reference image here, so there are no PSNR/SSIM scores to compare with.")
    lpips_missing(found.params.get("lpips_missing", ""))
    # While the round is open, nothing here may name the pictures being voted on: the page may be on the projector
    if result.disagreements:
        if found.is_open:
            st.caption("Where people and the metric disagree most, with the pictures, shows here once the round is "
                       "closed (the pictures would give the names away).")
        else:
            _disagreements(found, result.disagreements)
    if found.is_open and not arena.may_manage(found, user):
        return  # each vote names the models shown as A and B: the export opens to everyone when the round closes
    votes = guarded(arena.votes_table, found.id, user)
    if votes is not None:
        st.markdown("**Votes**")
        export_buttons(votes.rename(columns=VOTE_COLUMNS), f"round-{found.id}-votes", "arena_votes")


def _disagreements(found, items) -> None:
    st.markdown("**Where people and the metric disagree most**")
    pics = arena.pictures(found)
    for d in items:
        preferred, other = arena.title_of(found, d.preferred), arena.title_of(found, d.other)
        unit, digits = (" dB", 2) if d.metric == "psnr" else ("", 4)
        ties = f", {count(d.ties, 'tie')}" if d.ties else ""
        st.text(f"{d.image_name}: {d.wins} of {count(d.votes, 'vote')} preferred {preferred} over {other}{ties}; "
                f"{d.metric.upper()} {d.preferred_value:.{digits}f}{unit} against {d.other_value:.{digits}f}{unit}.")
        cols = st.columns(3)
        picture(cols[0], pics[(d.image_index, "output", d.preferred)].png, f"preferred: {plain(preferred)}")
        picture(cols[1], pics[(d.image_index, "output", d.other)].png, f"higher {d.metric.upper()}: {plain(other)}")
        reference = pics.get((d.image_index, "reference", ""))
        if reference is not None:
            picture(cols[2], reference.png, "clean image")


VIEWS = {"side": ("Side by side", side_view), "vote": ("Vote", vote_view), "standings": ("Standings", standings_view),
         "rounds": ("Rounds", rounds_view)}
