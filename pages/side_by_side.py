"""Side by side: one clip through two to four models (presets with a catalog entry's weights or random
initialisation, or a Hugging Face model with its repository's weights) — each one's top-k predictions and where its top class comes from (relevance, rollout or
Grad-CAM, :func:`videoattn_core.attention.explanations.explain`) at the same moments of the clip, one row per model.

Every model's memory is checked before any is built; the models then run one after the other, each row
filled as its model finishes, under a status box that says which model failed. Each row shows its model's input
frames at the same moments of the clip (:func:`videoattn_core.run.side_by_side.frames_at_moments`, with its notes). Results
stay in the session, by their inputs, until those change: coming back to the page shows them without running
again."""

import streamlit as st

import videoattn_core as vac
from pages import _cache as cache
from pages import _state as state
from pages import _status
from pages import _clips as clips
from pages import _widgets as widgets
from videoattn_core import figures, links
from videoattn_core.attention import explanations
from videoattn_core.cost import memory
from videoattn_core.run import devices, side_by_side
from videoattn_core.units import human
from videoattn_core.weights import lookup as weights_catalog

SLOTS = ("m1", "m2", "m3", "m4")
RESULTS = "side.results"  # each model's result on the clip, by its inputs (config, weights, clip, device, dtype, map)
DEFAULTS = {"m1": "timesformer_base", "m2": "mvit_v2_s", "m3": "swin3d_t", "m4": "videomae_base"}


def _spec(text: str) -> str:
    preset, pairs = links.parse_spec(text, hub=True)  # ValueError: unknown preset, or an hf: id that cannot open
    config = links.spec_config(preset, pairs)  # raises ConfigError if impossible
    if not config.has_head:
        raise ValueError(f"{preset} has no classification head, so it makes no predictions")
    return text


PAGE_FIELDS = {
    **{slot: _spec for slot in SLOTS},
    **{f"w{slot[1]}": widgets.parse_weights for slot in SLOTS},
    "n": lambda text: state.integer(text, "n", 2, 4),
    "clip": clips.parse_clip,
    "method": lambda text: state.choice(text, explanations.METHODS, "method"),
    "topk": lambda text: state.integer(text, "topk", 1, 20),
    "frames": lambda text: state.integer(text, "frames", 1, 8),
    "dtype": lambda text: state.choice(text, widgets.DTYPES, "dtype"),
}

st.title("Side by side")
st.caption("One clip through several models: each one's predictions and where its top class comes from, at the "
           "same moments of the clip. Each model reads the clip with its own recipe (its weights' evaluation "
           "recipe, else its preset's).")
view = state.open_view("side", PAGE_FIELDS, uses_model=False)
state.show_ignored()

classifiers = [m for m in vac.list_models() if vac.get_preset(m).config.has_head]
linked = {slot: links.parse_spec(view.link.page.get(slot, DEFAULTS[slot]), hub=True) for slot in SLOTS}
seeds = {"side.hub": ("_hub", next((p for p, _ in linked.values() if p not in classifiers), "")),"side.n": ("n", 2), "side.method": ("method", "relevance"), "side.topk": ("topk", 5),
         "side.frames": ("frames", 4), "side.dtype": ("dtype", "float32")}
for slot in SLOTS:
    preset, pairs = linked[slot]
    seeds[f"side.{slot}.preset"] = (f"_{slot}_preset", preset)
    seeds[f"side.{slot}.overrides"] = (f"_{slot}_overrides", "; ".join(pairs))
    seeds[f"side.{slot}.weights"] = (f"w{slot[1]}", "random")
state.seed_page(view, seeds, {**view.link.page, "_hub": seeds["side.hub"][1]})
# one Hugging Face model may join the compared models (only hf: ids: this page's state travels in its link)
hub_text = st.text_input("Hugging Face model", key="side.hub", placeholder="hf:ORG/NAME[@REVISION]",
                         help=links.HUB_FIELD_HELP.replace("it replaces the preset below", "it joins the models "
                                                           "each slot offers"))
if hub_text.strip():
    try:
        classifiers.append(links.open_model_name(hub_text, typed=True))
    except vac.VideoAttnError as exc:
        st.error(f"The Hugging Face model cannot be opened: {exc}", icon=":material/warning:")

clip, clip_link = widgets.clip_input(view, "side")
c1, c2, c3, c4, c5 = st.columns([2, 3, 2, 2, 2])
n = c1.slider("models", 2, 4, key="side.n")
method = c2.radio("map", explanations.METHODS, key="side.method", horizontal=True,
                  help="relevance: gradient-weighted attention through every layer (Chefer et al., ICCV 2021); "
                       "rollout: attention rollout (not class-specific); gradcam: Grad-CAM on the last stage")
k = c3.slider("top-k", 1, 20, key="side.topk")
count = c4.slider("moments of the clip", 1, 8, key="side.frames")
dtype = c5.selectbox("dtype", widgets.DTYPES, key="side.dtype", help=widgets.dtype_help(devices.default_device()))

chosen: list[tuple[str, str, vac.ModelConfig, str]] = []  # slot, preset, config, weights
for slot, column in zip(SLOTS[:n], st.columns(n)):
    with column:
        if st.session_state[f"side.{slot}.preset"] not in classifiers:  # the Hugging Face model was cleared
            st.session_state[f"side.{slot}.preset"] = DEFAULTS[slot]
        preset = st.selectbox(f"model {slot[1]}", classifiers, key=f"side.{slot}.preset")
        overrides = st.text_input("overrides (field=value; …)", key=f"side.{slot}.overrides",
                                  help="Any hyperparameter of the preset by its config field name, e.g. depth=2; "
                                       "img_size=64")
        hub = vac.get_preset(preset).origin is not None
        options = [widgets.REPOSITORY] if hub else ["random", *(e.name for e in weights_catalog.list_weights(preset))]
        if st.session_state[f"side.{slot}.weights"] not in options:
            if st.session_state[f"side.{slot}.weights"] not in ("random", widgets.REPOSITORY):
                st.warning(f"weights {st.session_state[f'side.{slot}.weights']} are not for {preset}; using random "
                           f"weights")
            st.session_state[f"side.{slot}.weights"] = options[0]
        weights = st.selectbox("weights", options, key=f"side.{slot}.weights",
                               format_func=lambda w: widgets.WEIGHTS_NAMES.get(w, w))
        try:
            config = links.spec_config(preset, [p for p in overrides.split(";") if p.strip()])
        except vac.ConfigError as exc:
            st.error(str(exc), icon=":material/warning:")
            continue
        chosen.append((slot, preset, config, weights))

page_state = {"n": n if n != 2 else None, "clip": clip_link if clip_link != clips.default_clip() else None,
              "method": method if method != "relevance" else None, "topk": k if k != 5 else None,
              "frames": count if count != 4 else None, "dtype": dtype if dtype != "float32" else None}
for slot, preset, config, weights in chosen:
    text = links.spec_text(preset, config)
    page_state[slot] = text if text != DEFAULTS[slot] else None
    page_state[f"w{slot[1]}"] = weights if weights not in ("random", widgets.REPOSITORY) else None
query = state.write_view(view, None, None, page_state)


def run_all() -> None:
    if len(chosen) < n:
        st.info("Fix the highlighted settings to run the models.")
        return
    device = devices.default_device()
    source = cache.clip_source(clip)
    # 1. every plan and memory estimate before anything is built: one model that does not fit refuses them all
    runs, families = [], []
    for slot, preset, config, weights in chosen:
        label = f"{slot[1]}. {links.spec_text(preset, config)} · {weights}"
        try:
            plan = cache.run_plan(preset, config, widgets.RunInputs(clip, weights, device, dtype))
            summary = cache.summary(plan.config)
        except vac.VideoAttnError as exc:
            st.error(f"model {label}: {exc}")
            return
        captured = side_by_side.explanation_layers(summary) if method != "gradcam" else ()
        refusal = memory.memory_plan(summary, device, devices.DTYPES[dtype].itemsize, captured=captured)["refusal"]
        if refusal:
            st.error(f"Model {label} does not fit, so this selection is refused and no model was built. {refusal}")
            return
        runs.append((label, summary, plan))
        families.append(config.family)
    # results stay in the session until their inputs change: leaving the page and coming back shows them again
    kept = st.session_state.get(RESULTS, {})
    run_keys = [(plan, method) for _, _, plan in runs]
    macs = sum(s.macs for _, s, _ in runs)
    token = tuple(run_keys)
    if (device == "cpu" and macs > widgets.AUTO_RUN_MACS and not all(r in kept for r in run_keys)
            and not state.approved("side", token)):
        st.info(f"These forwards cost {human(macs)} MACs on the CPU (and the map a backward each); "
                f"press Run to start them.")
        return
    moments = side_by_side.common_moments([p.frame_indices[0] for *_, p in runs], count)
    st.caption(f"On **{device}** ({dtype}); one view per model (its recipe's centre clip and crop, as `vac.predict` "
               f"reads it). Frames shown: each model's input frames nearest to source frames "
               f"{', '.join(map(str, moments))} of the clip.")
    # 2. one model at a time, each row filled as it finishes
    top = st.container()
    rows = [st.container(border=True) for _ in runs]
    waiting = [row.empty() for row in rows]
    for slot, (label, *_rest) in zip(waiting, runs):
        slot.caption(f"model {label}: waiting…")
    # kept as each model finishes (a rerun may stop the loop); results of other inputs are dropped
    results, failed = {r: kept[r] for r in run_keys if r in kept}, []
    st.session_state[RESULTS] = results
    with _status.steps(f"{len(runs)} models", where=top) as status:
        for i, (row, (label, summary, plan)) in enumerate(zip(rows, runs)):
            result = kept.get(run_keys[i])
            if result is None:
                status.step(f"model {i + 1} of {len(runs)}: {label}")
                waiting[i].caption(f"model {label}: running…")
                try:
                    result = cache.model_on_clip(plan, method, source)
                except vac.VideoAttnError as exc:
                    waiting[i].empty()
                    row.error(f"model {label}: {exc}")
                    failed.append(label)
                    continue
            results[run_keys[i]] = result
            waiting[i].empty()
            with row:
                show_row(i, label, result, moments, families[i])
        if failed:
            status.fail("running model " + ", ".join(failed))
        else:
            status.done(f"done: {len(runs)} models")


def show_row(i: int, label: str, result: side_by_side.ModelOnClip, moments: list[int], family: str) -> None:
    st.markdown(f"**{label}**")
    if result.random_init:
        st.caption("Random weights (seed 0): these predictions mean nothing.")
    top = result.top(k)
    left, right = st.columns([2, 5])
    independent = "independent scores (multi-label); " if result.scoring == "sigmoid" else ""
    left.plotly_chart(figures.topk_bar([p["label"] for p in top], [p["probability"] for p in top],
                                       title=f"top-{k}", note=f"{independent}labels: {result.labels_from}",
                                       scoring=result.scoring, color=figures.family_color(family)),
                      key=f"side_topk_{i}")
    shown = side_by_side.frames_at_moments(result.frame_indices, moments)
    picks = list(shown.positions)
    right.caption(shown.caption(len(result.frames)))
    if shown.notes:
        right.caption("\n".join(f"- {note}" for note in shown.notes))
    if result.heat is None:
        right.info(f"{method} is not available for this model: {result.unavailable}")
        right.plotly_chart(figures.frames_strip(result.frames[picks], titles=shown.titles, columns=len(picks)),
                           key=f"side_frames_{i}")
        return
    target = result.label(result.target)
    right.plotly_chart(figures.attention_overlay(
        result.frames, result.heat, show=picks, columns=len(picks), color_title=method, titles=shown.titles,
        title=f"{method} for {target}" + (f" ({result.note})" if result.note else "")), key=f"side_map_{i}")


run_all()
state.share_box("side-by-side", query)
if clip.startswith("upload:"):
    st.caption(f"Note: the uploaded clip cannot travel in a link: whoever opens it sees the sample clip "
               f"{clips.default_clip()}.")
