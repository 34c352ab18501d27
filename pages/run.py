"""Run page: a clip through the model — the frames it sees, its top-k predictions, and the measured per-layer
table (shapes, time, analytic against measured MACs)."""

import streamlit as st

import videoattn_core as vac
from pages import _cache as cache
from pages import _hub, _status
from pages import _state as state
from pages import _widgets as widgets
from videoattn_core import figures
from videoattn_core.inspection import rows
from videoattn_core.run import runtime
from videoattn_core.run.predict import timeline_series
from videoattn_core.units import human

VIEWS = ("single", "protocol")
PAGE_FIELDS = {**widgets.RUN_FIELDS, "topk": lambda text: state.integer(text, "topk", 1, 20),
               "views": lambda text: state.choice(text, VIEWS, "views")}

st.title("Run")
view = state.open_view("run", PAGE_FIELDS)
state.show_ignored()
preset, config = widgets.model_picker(view)
if config is None:
    st.info("Fix the highlighted hyperparameter in the sidebar to run the model.")
    st.stop()

if not config.has_head:
    query = state.write_view(view, preset, config, {})
    st.info(f"Not applicable: {preset} has no classification head (its input is `{config.input_layout}` and its "
            f"output a feature map), so it makes no predictions. Its layers and costs are on the Model page.")
    st.stop()

inputs, page_state = widgets.run_inputs(view, preset, config)
state.seed_page(view, {"run.topk": ("topk", 5), "run.views": ("views", "single")})
left, right = st.columns(2)
k = left.slider("top-k", 1, 20, key="run.topk")
views = right.radio("views", VIEWS, horizontal=True, key="run.views",
                    format_func=lambda v: {"single": "one view", "protocol": "the paper's test views"}[v],
                    help="The paper's protocol averages the softmax of several temporal clips × spatial crops, "
                         "one forward each (a Hugging Face model's processor reads one view).")
page_state["topk"] = k if k != 5 else None
page_state["views"] = views if views != "single" else None
query = state.write_view(view, preset, config, page_state)

try:
    plan = cache.run_plan(preset, config, inputs, views, widgets.checkpoint_bytes(inputs))
    run_summary = cache.summary(plan.config)
except vac.VideoAttnError as exc:
    st.error(str(exc))
    st.stop()
implied = widgets.implied_fields(plan, config, inputs)
if implied:
    st.caption("The chosen weights need " + ", ".join(implied) + ".")
refusal = cache.memory_check(run_summary, inputs)
if refusal:
    st.error(refusal)
    st.stop()
clips, crops = plan.views
with st.expander("What this run will do (the plan, as `predict --dry-run` prints it)"):
    st.json(plan.to_dict(), expanded=1)
st.caption(f"Recipe: {plan.recipe.num_frames} frames ({plan.recipe.sampling}, {plan.recipe.clip_rule} clips), short "
           f"side {plan.recipe.short_side(crops)} px ({plan.recipe.resampling} resampling), crop {plan.recipe.crop}; "
           f"{clips} clip(s) × {crops} crop(s) = {clips * crops} forward(s). Source: {plan.recipe.source}.")
if widgets.needs_button(run_summary, inputs) and not state.approved("run", plan):
    st.info(f"This forward costs {human(run_summary.macs)} MACs on the CPU; press Run to start it.")
    st.stop()

try:
    with _status.steps("Running") as status:
        status.step("decoding the clip")
        clip = cache.load_clip(plan, cache.clip_source(inputs.clip))
        status.step("building the model")
        loaded = cache.load_model(plan, widgets.checkpoint_bytes(inputs))
        status.step("forwarding")
        result = cache.run_inspection(plan, (), loaded, clip)
        status.step("the other views")
        probs = cache.view_probabilities(plan, loaded, clip)
        status.done(f"done: forward in {1e3 * result.time_s:.0f} ms on {inputs.device}"
                    + (" in bfloat16" if inputs.dtype == "bfloat16" else ""))
except vac.VideoAttnError as exc:
    st.error(str(exc))
    st.stop()

st.subheader("Frames the model sees")
st.caption(clip.description + ("; " + "; ".join(clip.notes) if clip.notes else ""))
st.plotly_chart(figures.frames_strip(clip.frames), key="frames_chart")

st.subheader("Predictions")
if loaded.random_init:
    st.warning("Random weights: the model is randomly initialised (seed 0), so these predictions mean nothing. "
               "Choose a catalog entry or upload a checkpoint for real predictions.")
predictions = runtime.top_predictions(probs, loaded.labels, k)
scores_note = _hub.scores_caption(loaded.scoring)
if scores_note:
    st.caption(scores_note)
st.plotly_chart(figures.topk_bar([p["label"] for p in predictions], [p["probability"] for p in predictions],
                                 title=f"top-{k}" + (" independent scores" if scores_note else "")
                                 + f" (labels: {loaded.labels_from})", scoring=loaded.scoring), key="topk_chart")
if loaded.report:
    with st.expander("checkpoint report"):
        st.text(loaded.report)

st.subheader("Predictions over time")
stride = st.number_input("a window every … seconds", min_value=0.5, max_value=600.0, value=2.0, step=0.5,
                         key="run.stride", help="Each window is read with the same recipe and decoded by seeking.")
timeline_inputs = (plan, float(stride))
if st.button("Predict over the whole clip", key="run.timeline"):
    try:
        with st.spinner("windows…"):
            state.keep_result("run.timeline", timeline_inputs, cache.timeline(plan, float(stride), loaded,
                                                                              cache.clip_source(inputs.clip)))
    except vac.VideoAttnError as exc:
        st.error(str(exc))
over_time = state.kept_result("run.timeline", timeline_inputs)  # until its model, clip or step change
if over_time is not None:
    windows = over_time["windows"]
    st.plotly_chart(figures.prediction_timeline(
        [w["start_s"] for w in windows], timeline_series(over_time, loaded.labels),
        title=f"{len(windows)} windows (labels: {loaded.labels_from})", scoring=loaded.scoring),
        key="timeline_chart")

st.subheader("Measured layers")
cols = st.columns(4)
cols[0].metric("forward time", f"{1e3 * result.time_s:.1f} ms")
cols[1].metric("analytic MACs", human(result.macs))
cols[2].metric("measured MACs", human(result.measured_macs),
               help="torch's FlopCounterMode (FLOPs / 2); it counts matmul, conv and attention kernels, not "
                    "normalization, so it sits a little below the analytic count.")
cols[3].metric("device", f"{inputs.device} · {inputs.dtype}")
table = rows.measured_rows(result)
st.dataframe(table, hide_index=True, width="stretch", height=360, key="measured_table",
             column_config=widgets.count_columns("analytic MACs", "measured MACs"))
st.download_button("Download the measured table as CSV", rows.rows_to_csv(table),
                   file_name=f"{_hub.file_stem(preset)}_measured.csv", mime="text/csv", key="run.download")
leaves = [r for r in result.layers if r.is_leaf and r.self_time_s is not None]
left, right = st.columns(2)
left.plotly_chart(figures.layer_times([r.name for r in leaves], [1e3 * r.self_time_s for r in leaves],
                                      [r.category for r in leaves], title="time per layer"), key="times_chart")
right.plotly_chart(figures.macs_agreement([r.name for r in leaves], [r.macs for r in leaves],
                                          [r.measured_macs or 0 for r in leaves],
                                          title="analytic against measured MACs"), key="macs_chart")

state.share_box("run", query)
note = widgets.uploaded_note(inputs)
if note:
    st.caption(f"Note: {note}.")
