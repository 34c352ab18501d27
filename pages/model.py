"""Model page: pick a preset, edit any hyperparameter, and see what the network costs — params, MACs, the
per-layer table, where the cost sits, and how it grows with frames and resolution. Everything comes from the
static summary (no weights, no forward pass), so it follows the widgets at once.

Under the numbers, one section at a time (kept in the link): the layer table, the cost breakdown, or the growth
curves. Only the chosen one is computed and sent, so the page a link opens is light to draw; the charts' library
(plotly.js) takes the browser seconds to start on a small machine, and the growth curves summarise the config at
ten other sizes. The memory estimate (a second meta forward) is filled in after the section. All of it is cached
across sessions."""

import streamlit as st

import videoattn_core as vac
from pages import _cache as cache
from pages import _hub
from pages import _state as state
from pages import _widgets as widgets
from videoattn_core import figures, inspection
from videoattn_core.cost import growth
from videoattn_core.inspection import rows
from videoattn_core.registry import family_of
from videoattn_core.units import human, human_bytes

BREAKDOWNS = ("params", "macs")
BREAKDOWN_LABELS = {"params": "parameters", "macs": "MACs"}
SECTIONS = {"layers": "Layers", "cost": "Where the cost sits", "growth": "How the cost grows"}
PAGE_FIELDS = {
    "section": lambda text: state.choice(text, SECTIONS, "section"),
    "search": str,
    "breakdown": lambda text: state.choice(text, BREAKDOWNS, "breakdown"),
}

st.title("Model")
view = state.open_view("model", PAGE_FIELDS)
state.show_ignored()
preset, config = widgets.model_picker(view)

if config is None:
    st.info("Fix the highlighted hyperparameter in the sidebar to see the model's numbers.")
    st.stop()

family = family_of(config)
try:
    summary = cache.summary(config)
except vac.VideoAttnError as exc:
    st.error(str(exc))
    st.stop()

origin = vac.get_preset(preset).origin
st.subheader(f"{preset} · {vac.get_preset(preset).description}")
st.caption(f"{family.paper} — reproduces {family.repository}")
if origin is not None:  # a Hugging Face model: what its config.json and processor say (its weights stay unfetched)
    _hub.show_card(origin)

cols = st.columns(5)
cols[0].metric("parameters", f"{summary.params:,}", help="Every learnable parameter of the built network.")
cols[1].metric("MACs per view", human(summary.macs),
               help="Multiply-accumulates for one clip of the input shape, fvcore's convention: one multiply-add "
                    "counts 1; softmax, activations, additions and biases are not counted. Papers call this "
                    "'FLOPs'.")
cols[2].metric("FLOPs per view", human(summary.flops),
               help="Floating-point operations, 2 × MACs (the convention of torch's FlopCounterMode).")
cols[3].metric("views", f"{summary.views}",
               help="Clips × crops averaged at test time in the paper's protocol; multiply the per-view cost by "
                    "this for the paper's inference cost.")
memory_slot = cols[4].empty()  # filled once the table and the breakdown are drawn (it takes a meta forward)
st.caption(f"Input {tuple(summary.input_shape)} laid out as `{summary.input_layout}`; exact counts "
           f"{summary.params:,} parameters, {summary.macs:,} MACs and {summary.flops:,} FLOPs per view "
           f"({human(summary.macs_all_views)} MACs over the paper's {summary.views} views). "
           f"MACs: {inspection.MACS_CONVENTION}. FLOPs: {inspection.FLOPS_CONVENTION}.")

state.seed_page(view, {"model.section": ("section", "layers")})
section = st.segmented_control("section", list(SECTIONS), required=True, key="model.section",
                               format_func=SECTIONS.get, label_visibility="collapsed")
# each section's settings: taken from the view when the section is drawn; while another one is shown they keep
# the view's values (their widgets are not drawn, and a widget Streamlit did not draw keeps no reliable state)
SECTION_WIDGETS = {"layers": {"model.search": ("search", "")}, "cost": {"model.breakdown": ("breakdown", "params")}}
for other, section_widgets in SECTION_WIDGETS.items():
    if other != section:
        for widget_key in section_widgets:
            st.session_state.pop(widget_key, None)
state.seed_page(view, SECTION_WIDGETS.get(section, {}))
search = view.link.page.get("search", "")
breakdown = view.link.page.get("breakdown", "params")

if section == "layers":
    table = rows.layer_rows(summary)
    search = st.text_input("filter layers (name or type contains)", key="model.search").strip()
    shown = [r for r in table if search.lower() in r["name"].lower() or search.lower() in r["type"].lower()]
    st.dataframe(shown, hide_index=True, width="stretch", height=360, key="layer_table",
                 column_config=widgets.count_columns("params", "MACs", "own params", "own MACs"))
    st.caption(f"{len(shown)} of {len(table)} modules. Axes: B batch, C channels, T frames, H W height and width "
               f"(of whichever token grid the tensor is on), heads, d head width, nT nH nW windows, wt wh ww positions "
               f"in a window, (1+…) a leading CLS token. params and MACs include a module's children; own ones do "
               f"not.")
    st.download_button(f"Download the {len(shown)} rows shown as CSV", rows.rows_to_csv(shown),
                       file_name=f"{_hub.file_stem(preset)}_layers.csv",
                       mime="text/csv", key="model.download")
elif section == "cost":
    breakdown = st.radio("split", BREAKDOWNS, horizontal=True, key="model.breakdown",
                         format_func=BREAKDOWN_LABELS.get)
    leaves = rows.leaf_rows(summary)
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.cost_breakdown(leaves, breakdown, title=f"{BREAKDOWN_LABELS[breakdown]} by category "
                                                                       f"and module"), key="breakdown_chart")
    right.plotly_chart(figures.category_bars({BREAKDOWN_LABELS[k]: v for k, v in summary.breakdown().items()},
                                             title="share per category"), key="category_chart")

ALLOCATORS = {"pinned": "the allocator pinned, as near the memory's limit", "default": "glibc's default allocator",
              "kept": "glibc's allocator keeping freed memory for the next forward"}
memory = cache.memory_plan(config)
memory_slot.metric("memory (fp32, batch 1, CPU)", human_bytes(memory["total_bytes"]),
                   help=f"What one inference forward takes at most, as the Run page's refusal counts it: weights "
                        f"{human_bytes(memory['weights_bytes'])} + live tensors "
                        f"{human_bytes(memory['live_tensor_peak_bytes'])} × the allocator's slack + the CPU "
                        f"runtime's start-up {human_bytes(memory['runtime_reserve_bytes'])}, with "
                        f"{ALLOCATORS.get(memory.get('allocator'), 'its allocator')}.")

if section == "growth":
    left, right = st.columns(2)
    for column, axis, label in ((left, "frames", "frames"), (right, "size", "pixels per side")):
        series, dashed, current = cache.growth_curves(config, axis)
        column.plotly_chart(figures.cost_curves(series, x_title=label, y_title="MACs per view", dashed=dashed,
                                                marker_x=current, title=f"MACs against {label}"),
                            key=f"growth_{axis}")
        column.caption(growth.growth_note(series, axis))

query = state.write_view(view, preset, config, {"section": section if section != "layers" else None,
                                                 "search": search or None,
                                                 "breakdown": breakdown if breakdown != "params" else None})
state.share_box("", query)
