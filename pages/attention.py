"""Attention page: where a query token looks, laid over the frames the model sees.

Pick a layer, a head (or the mean over heads) and a query token (the CLS token or a patch). TimeSformer's
spatial layers show each frame's map, its temporal layers the T×T attention of a patch position; MViT maps its
pooled keys back onto the frames; Video Swin shows the query's 3D window (cyclic shift undone) with its borders.
The layer's relative position tables, the attention rollout across layers, the class explanation (relevance,
rollout or Grad-CAM, animated over the frames, with MP4/GIF downloads) and every head's statistics follow."""

import streamlit as st

import videoattn_core as vac
from pages import _cache as cache
from pages import _hub, _query, _status
from pages import _state as state
from pages import _widgets as widgets
from videoattn_core import figures
from videoattn_core.attention import explanations, gradcam
from videoattn_core.attention import maps as attention_maps
from videoattn_core.inspection import categories
from videoattn_core.run import runtime
from videoattn_core.units import human

PAGE_FIELDS = {
    **widgets.RUN_FIELDS,
    "layer": str,
    "head": state.parse_head,
    "query": state.parse_query,
    "frame": lambda text: state.integer(text, "frame", 0, 4095),
    "rollout": lambda text: state.choice(text, ("on", "off"), "rollout"),
    "explain": lambda text: state.choice(text, ("off", *explanations.METHODS), "explain"),
    "target": lambda text: state.integer(text, "target", 0, 100_000),
    "camlayer": str,
    "headstats": lambda text: state.choice(text, ("on", "off"), "headstats"),
}

st.title("Attention")
view = state.open_view("attention", PAGE_FIELDS)
state.show_ignored()
preset, config = widgets.model_picker(view)
if config is None:
    st.info("Fix the highlighted hyperparameter in the sidebar to see attention.")
    st.stop()
if not config.has_head:
    state.write_view(view, preset, config, {})
    st.info(f"Not applicable: {preset} is a convolutional model without attention layers (and without a "
            f"classification head); its layers and costs are on the Model page.")
    st.stop()

inputs, page_state = widgets.run_inputs(view, preset, config)
try:
    plan = cache.run_plan(preset, config, inputs, "single", widgets.checkpoint_bytes(inputs))
    run_summary = cache.summary(plan.config)
except vac.VideoAttnError as exc:
    st.error(str(exc))
    st.stop()

try:
    with _status.steps("Preparing") as status:
        status.step("decoding the clip")
        clip = cache.load_clip(plan, cache.clip_source(inputs.clip))
        status.step("building the model")
        refusal = cache.memory_check(run_summary, inputs)
        if refusal:
            status.fail("building the model: refused, it does not fit in memory")
            st.error(refusal)
            st.stop()
        loaded = cache.load_model(plan, widgets.checkpoint_bytes(inputs))
        status.done("ready")
except vac.VideoAttnError as exc:
    st.error(str(exc))
    st.stop()

kinds = categories.attention_layer_kinds(loaded.model)
layers = list(kinds)
# the default: the last layer that is not purely temporal (it has the CLS token and a spatial map)
default_layer = next((n for n in reversed(layers) if kinds[n] != "time"), layers[-1])
model = (plan.preset, plan.config, plan.weights.identity)  # the network and its weights, whatever the device
changed = state.model_changed(view, model)  # kept settings are checked against it, heavy views wait
notes = st.container()  # what the link or the model change could not keep, and what replaced it
ss = st.session_state
state.seed_page(view, {"attention.layer": ("layer", default_layer), "attention.head": ("head", "mean"),
                        "attention.frame": ("frame", 0), "attention.rollout": ("rollout", "off")})
if ss["attention.layer"] not in kinds:
    notes.warning(f"layer={ss['attention.layer']!r} ignored: not an attention layer of this model; showing "
                  f"{default_layer}" if view.opened else
                  f"layer {ss['attention.layer']} is not in {preset}; showing {default_layer}")
    ss["attention.layer"] = default_layer

c1, c2 = st.columns([3, 2])
state.relabel("attention.layer", tuple(kinds.items()))
layer = c1.selectbox("layer", layers, key="attention.layer", format_func=lambda n: f"{n} ({kinds[n]})",
                     help="Every module that owns an attention; divided TimeSformer blocks have a spatial attn and a "
                          "temporal_attn.")
capture = (layer,)
refusal = cache.memory_check(run_summary, inputs, captured=capture)
if refusal:
    st.error(refusal)
    st.stop()
if widgets.needs_button(run_summary, inputs) and not state.approved("attention", (plan, layer)):
    st.info(f"This forward costs {human(run_summary.macs)} MACs on the CPU; press Run to start it.")
    st.stop()
with st.spinner("forwarding and capturing the layer's attention…"):
    result = cache.run_inspection(plan, capture, loaded, clip, measure_macs=False)
captured = result.attention[layer]
layout = captured.layout
heads = int(captured.probs.shape[1])
grid, has_cls = attention_maps.query_grid(captured)
q_t, q_h, q_w = grid

head_options = ["mean", *range(heads)]
if ss["attention.head"] not in head_options:
    notes.warning(f"head={ss['attention.head']!r} ignored: this layer has {heads} heads (0 to {heads - 1}); showing "
                  f"the mean" if view.opened else f"head {ss['attention.head']} is not in {layer} of {preset} "
                  f"({heads} heads: 0 to {heads - 1}); showing the mean over heads")
    ss["attention.head"] = "mean"
head = c2.selectbox("head", head_options, key="attention.head",
                    format_func=lambda h: "mean over heads" if h == "mean" else f"head {h}")

frames = clip.frames
last = len(frames) - 1
if ss["attention.frame"] > last:
    notes.warning((f"frame={ss['attention.frame']} ignored: " if view.opened else f"frame {ss['attention.frame']} "
                   f"is not among the {last + 1} frames {preset} reads; ") + f"showing frame {last}")
    ss["attention.frame"] = last
frame = ss["attention.frame"]

# the query: the CLS token where the layer has one, else a token on the shown frame (its map shows there)
query_choice = _query.QueryChoice(grid, has_cls, frame, len(frames), layer, preset, view.opened)
position = (ss.get("attention.qt"), ss.get("attention.qy"), ss.get("attention.qx"))
if view.entered or "attention.query_kind" not in ss:
    wanted = view.link.page.get("query") or query_choice.default
else:
    wanted = "cls" if ss["attention.query_kind"] == "cls" else position
query, note = query_choice.check(wanted)
try:
    amap = attention_maps.attention_map(captured, query=query, head=None if head == "mean" else head)
    if changed and note is None and not query_choice.shows(amap, query):
        query, note = query_choice.invisible(query)
        amap = attention_maps.attention_map(captured, query=query, head=None if head == "mean" else head)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
if note:
    notes.warning(note)
for name, value in query_choice.widget_values(query, ss).items():
    state.settle(name, value)

c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
c1.radio("query", ("cls", "patch"), horizontal=True, key="attention.query_kind",
         format_func=lambda q: {"cls": "CLS token", "patch": "a patch"}[q], disabled=not has_cls,
         help="The CLS token exists in TimeSformer's spatial and joint layers and MViT; windowed and temporal layers "
              "have none.")
patch = query != "cls"
c2.slider("query t", 0, max(q_t - 1, 1), key="attention.qt", disabled=not patch or q_t == 1)
c3.slider("query y", 0, max(q_h - 1, 1), key="attention.qy", disabled=not patch or q_h == 1)
c4.slider("query x", 0, max(q_w - 1, 1), key="attention.qx", disabled=not patch or q_w == 1)
qt, qy, qx = query if patch else (ss["attention.qt"], ss["attention.qy"], ss["attention.qx"])  # for the labels
st.slider("frame", 0, max(len(frames) - 1, 1), key="attention.frame",
          help="Steps through time; the strip below shows every frame.")

grid_text = "×".join(map(str, layout.grid))
facts = [f"kind **{layout.kind}**", f"token grid T×H×W = {grid_text}", f"{heads} heads",
         "with a CLS token" if layout.cls else "no CLS token"]
if layout.q_grid or layout.kv_grid:
    facts.append(f"query grid {'×'.join(map(str, layout.q_grid or layout.grid))}, key/value grid "
                 f"{'×'.join(map(str, layout.kv_grid or layout.grid))}")
if layout.window:
    facts.append(f"window {'×'.join(map(str, layout.window))}, shift {'×'.join(map(str, layout.shift or (0, 0, 0)))}"
                 + (" (cyclic shift undone on the frames)" if layout.shift and any(layout.shift) else ""))
st.caption(" · ".join(facts) + (f". {amap.note}" if amap.note else ""))
if amap.cls_weight is not None:
    st.caption(f"attention to the CLS key: {amap.cls_weight:.4f}")

query_label = "CLS" if query == "cls" else f"token (t={qt}, y={qy}, x={qx})"
head_label = "mean over heads" if head == "mean" else f"head {head}"
left, right = st.columns([3, 2])
left.plotly_chart(figures.attention_overlay(
    frames, amap.values, show=[frame], boxes=amap.boxes, query=None if query == "cls" else query,
    query_grid=(q_t, q_h, q_w), columns=1, title=f"{layer} · {head_label} · query {query_label} · frame {frame}"),
    key="attention_frame_chart")
if layout.kind == "time":
    position = (qy, qx)
    matrix = attention_maps.temporal_matrix(captured, position, head=None if head == "mean" else head)
    right.plotly_chart(figures.temporal_matrix(matrix, highlight=qt, title=f"temporal attention at patch "
                                                                           f"(y={qy}, x={qx})"),
                       key="temporal_chart")
else:
    right.markdown("**How to read it.** The heat is the query's attention over the keys, averaged over the chosen "
                   "heads; transparent cells cannot be attended (outside the query's window or frame). Cyan boxes "
                   "are window borders, the green box the query.")
st.plotly_chart(figures.attention_overlay(frames, amap.values, boxes=amap.boxes,
                                          query=None if query == "cls" else query, query_grid=(q_t, q_h, q_w),
                                          columns=min(8, len(frames)), title="every frame"),
                key="attention_strip_chart")

window_frames = attention_maps.layer_window_frames(loaded.model, layer)
dt = 0
if attention_maps.layer_relative_tables(loaded.model, layer):
    st.subheader("Relative position tables of this layer")
    if window_frames > 1:
        dt = st.slider("frame offset Δt of the bias plane", -(window_frames - 1), window_frames - 1, 0,
                       key="attention.dt")
    for i, table in enumerate(attention_maps.layer_relative_tables(loaded.model, layer, dt=dt)):
        st.plotly_chart(figures.bias_tables(table.panels, x_title=table.x_label, y_title=table.y_label,
                                            x_offsets=table.x_offsets, y_offsets=table.y_offsets,
                                            columns=6, title=f"{table.name}: {table.note}"),
                        key=f"bias_chart_{i}")

st.subheader("Attention rollout")
if changed and ss["attention.rollout"] == "on":  # heavy: it captures every layer; it runs again when asked for
    st.info(f"The rollout was turned off for the new model, {preset}: it captures every layer's attention. Switch "
            f"it on to run it again.")
    ss["attention.rollout"] = "off"
show_rollout = st.radio("CLS attention rolled out across all layers (Abnar & Zuidema, 2020)", ("off", "on"),
                        horizontal=True, key="attention.rollout")
reason = attention_maps.rollout_unavailable_reason(loaded.model)
if reason:
    st.info(f"Rollout is not available for this architecture: {reason}.")
elif show_rollout == "on":
    with st.spinner("rolling attention out across the layers…"):
        rolled = cache.rollout(plan, loaded, clip)
    st.plotly_chart(figures.attention_overlay(frames, rolled, columns=min(8, len(frames)),
                                              title="CLS attention rolled out across all layers",
                                              color_title="rollout"), key="rollout_chart")

st.subheader("Explain: why this class")
state.seed_page(view, {"attention.explain": ("explain", "off"), "attention.target": ("target", None),
                        "attention.camlayer": ("camlayer", None)})
if changed and ss["attention.explain"] != "off":  # heavy: it runs again when asked for this model
    st.info(f"The {ss['attention.explain']} explanation was turned off for the new model, {preset}: it costs a "
            f"forward and a backward pass. Choose a method to run it again.")
    ss["attention.explain"] = "off"
e1, e2, e3 = st.columns(3)
method = e1.radio("method", ("off", *explanations.METHODS), horizontal=True, key="attention.explain",
                  help="relevance: gradient-weighted attention through every layer (Chefer et al., ICCV 2021); "
                       "rollout: attention rollout (not class-specific); gradcam: Grad-CAM on one layer")
target = cam_layer = None
if method != "off":
    probs = cache.view_probabilities(plan, loaded, clip)
    top = runtime.top_predictions(probs, loaded.labels, 5)
    options = [p["index"] for p in top]
    if ss["attention.target"] not in options:
        if ss["attention.target"] is not None:
            st.caption(f"target={ss['attention.target']} ignored: not among the top 5 classes")
        ss["attention.target"] = options[0]
    names = {p["index"]: f"{p['label']} (" + (f"score {p['probability']:.3f}" if loaded.scoring == "sigmoid" else
                                              f"{100 * p['probability']:.1f}%") + ")" for p in top}
    state.relabel("attention.target", tuple(names.items()))
    target = e2.selectbox("class (top 5)", options, key="attention.target", format_func=names.get)
    if method == "gradcam":
        cam_layers = gradcam.gradcam_layers(loaded.model)
        if ss["attention.camlayer"] not in cam_layers:
            asked, used = ss["attention.camlayer"], gradcam.default_gradcam_layer(loaded.model)
            if asked is not None:  # say which layer Grad-CAM uses instead of the one asked for
                st.warning(f"camlayer={asked!r} ignored: {preset} has no Grad-CAM layer {asked}; using {used}"
                           if view.opened else f"Grad-CAM layer {asked} is not in {preset}; using {used}")
            ss["attention.camlayer"] = used
        cam_layer = e3.selectbox("Grad-CAM layer", cam_layers, key="attention.camlayer")
    try:
        with st.spinner(f"explaining class {target} ({method})…"):
            explained = cache.explanation(plan, method, target, cam_layer, loaded, clip)
    except ValueError as exc:
        st.info(f"{method} is not available for this model: {exc}")
    else:
        if explained.note:
            st.caption(explained.note)
        st.plotly_chart(figures.explanation_animation(frames, explained.frames, color_title=method,
                                                      title=f"{method} for {names[target]}"), key="explain_chart")
        videos = {kind: cache.explanation_video(plan, method, target, cam_layer, kind, frames,
                                                explained.frames) for kind in ("mp4", "gif")}
        d1, d2 = st.columns(2)
        stem = f"{_hub.file_stem(preset)}-{method}-{target}"
        d1.download_button("overlay (MP4)", videos["mp4"], file_name=f"{stem}.mp4", mime="video/mp4",
                           key="explain_mp4")
        d2.download_button("overlay (GIF)", videos["gif"], file_name=f"{stem}.gif", mime="image/gif",
                           key="explain_gif")

st.subheader("Head statistics")
state.seed_page(view, {"attention.headstats": ("headstats", "off")})
if changed and ss["attention.headstats"] == "on":
    st.info(f"The head statistics were turned off for the new model, {preset}: they capture every layer's attention. "
            f"Switch them on to run them again.")
    ss["attention.headstats"] = "off"
show_stats = st.radio("mean attention distance, entropy and attention to CLS of every head of every layer "
                      "(one forward capturing every layer)", ("off", "on"), horizontal=True, key="attention.headstats",
                      help="Distance after Dosovitskiy et al. (ViT, Fig. 7): each query's attention-weighted distance "
                           "to the patch keys, in pixels on the input and in frames, averaged over the patch queries.")
if show_stats == "on":
    with st.spinner("capturing every layer's attention…"):
        stats = cache.head_statistics(plan, loaded, clip)
    st.plotly_chart(figures.head_statistics(stats.layers, {k: getattr(stats, k) for k in figures.HEAD_STATISTICS},
                                            title="every head × layer"), key="head_statistics_chart")
    st.caption("Layers in execution order, one dot per head; a statistic that does not apply (no CLS key, a layer "
               "with fewer heads) is left out.")

page_state.update({"explain": None if method == "off" else method, "target": target,
                   "camlayer": cam_layer if cam_layer and cam_layer != gradcam.default_gradcam_layer(loaded.model)
                   else None})
page_state.update({"layer": layer if layer != default_layer else None, "head": None if head == "mean" else head,
                   "query": None if query == query_choice.default else ",".join(map(str, query)),
                   "frame": frame or None, "rollout": "on" if show_rollout == "on" and not reason else None,
                   "headstats": "on" if show_stats == "on" else None})
state.model_shown(view, model)
query_string = state.write_view(view, preset, config, page_state)
state.share_box("attention", query_string)
note = widgets.uploaded_note(inputs)
if note:
    st.caption(f"Note: {note}.")
