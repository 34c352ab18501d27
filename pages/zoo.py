"""Zoo page: every catalog entry as a point — the top-1 its source published on a dataset against the MACs of its
published test protocol, its parameters, or a forward measured on this machine — with the Pareto frontier; a point
(clicked, or chosen below) opens in the Model or Run page."""

import streamlit as st

from pages import _cache as cache
from pages import _state as state
from pages import _widgets as widgets
from videoattn_core import figures
from videoattn_core.cost import zoo
from videoattn_core.links import make_link
from videoattn_core.run import devices, timing
from videoattn_core.weights import lookup as weights_lookup

DATASETS = zoo.datasets()
PAGE_FIELDS = {
    "dataset": lambda text: state.choice(text, DATASETS, "dataset"),
    "cost": lambda text: state.choice(text, tuple(zoo.COSTS), "cost"),
    "entry": str,
}
COST_LABELS = {"macs": "MACs × views", "params": "parameters", "time": "measured time"}
DTYPE = "float32"

st.title("Zoo")
st.caption("Every published checkpoint of the catalog: the top-1 its source reports, against what it costs. "
           "Accuracies, views and sources come from the catalog (`videoattn_core.weights.lookup`); MACs and parameters "
           "are counted on the network each entry builds.")
view = state.open_view("zoo", PAGE_FIELDS, uses_model=False)
state.show_ignored()
state.seed_page(view, {"zoo.dataset": ("dataset", DATASETS[0]), "zoo.cost": ("cost", "macs")})

c1, c2 = st.columns([2, 3])
dataset = c1.selectbox("dataset", DATASETS, key="zoo.dataset", format_func=lambda d: zoo.DATASET_NAMES.get(d, d))
cost = c2.radio("cost", list(zoo.COSTS), key="zoo.cost", horizontal=True, format_func=COST_LABELS.get,
                help="MACs: per view (multiply-accumulates, the papers' 'FLOPs') × the views of the published test "
                     "protocol. Time: one forward of each entry's network with random weights, measured here on "
                     "request, × its views.")
points = cache.zoo_points(dataset)
by_name = {p.name: p for p in points}

measured: dict[str, float] = {}
refused: dict[str, str] = {}
ready = True
if cost == "time":
    device = devices.default_device()
    st.caption(f"One forward per entry (random weights, a random clip of its input shape, {DTYPE}) on **{device}**, "
               f"after a warm-up forward, one entry after the other; cached. Entries whose estimated memory does "
               f"not fit are refused before anything is built. On a CPU the large models take minutes.")
    token = (dataset, device)
    if st.button("Measure forward times", key="zoo.measure"):
        st.session_state["zoo.measured"] = token
    if st.session_state.get("zoo.measured") == token:
        progress = st.progress(0.0, text="measuring…")

        def check(p):
            return cache.memory_check(cache.summary(weights_lookup.entry_config(p.name)),
                                      widgets.RunInputs("", "random", device, DTYPE))

        measured, refused = timing.measured_seconds(
            points, device, DTYPE, measure=cache.measure_forward, check=check,
            progress=lambda i, p: progress.progress(i / len(points), text=f"measuring {p.name}…"))
        progress.progress(1.0, text=f"measured {len(measured)} of {len(points)} entries")
        for name, message in refused.items():
            st.warning(f"{name}: {message}")
    else:
        ready = False
        st.info("Press the button to measure each entry's forward time on this machine.")

if ready:
    costs = {p.name: p.cost(cost, measured) for p in points}
    front = zoo.pareto_front([(p.name, costs[p.name], p.top1) for p in points])

    def row(p):
        top5 = f", top-5 {p.top5:g}%" if p.top5 is not None else ""
        hover = (f"<b>{p.name}</b><br>{p.family} · {p.preset}<br>top-1 {p.top1:g}%{top5}<br>"
                 f"{figures.human(p.macs_per_view)} MACs per view × {p.views} = {figures.human(p.macs)}<br>"
                 f"{figures.human(p.params)} parameters<br>{p.protocol}<br>measured: {p.metrics_protocol}")
        if cost == "time":
            hover += f"<br>{costs[p.name]:.3g} s here ({p.views} × one forward)"
        return {"name": p.name, "x": costs[p.name], "y": p.top1, "hover": hover}

    groups: dict[str, list] = {}
    for p in points:
        if costs[p.name] is not None:
            groups.setdefault(p.family, []).append(row(p))
    fig = figures.zoo_scatter(groups, [row(by_name[n]) for n in front], x_title=zoo.COSTS[cost],
                              title=f"{zoo.DATASET_NAMES.get(dataset, dataset)}: top-1 against "
                                    f"{COST_LABELS[cost]} ({len(points)} entries)")
    event = st.plotly_chart(fig, key="zoo_chart", on_select="rerun", selection_mode="points")
    # a click on a point chooses that entry below (once per click: the selection stays while the user moves on)
    clicked = None
    for pt in (event.selection.points if event else []):
        trace = fig.data[pt.get("curve_number", 0)]
        index = pt.get("point_index", pt.get("point_number"))
        if trace.ids is not None and index is not None and trace.name != "Pareto frontier":
            clicked = trace.ids[index]
    if clicked and clicked != st.session_state.get("zoo.clicked"):
        st.session_state["zoo.clicked"] = clicked
        st.session_state["zoo.entry"] = clicked

    st.caption("Pareto frontier (dotted): the entries no other entry beats — a higher top-1 at no more cost. "
               "Each number is stated with its protocol; entries of one dataset measured with different views "
               "or crops are not measured alike.")
    table = [{"entry": p.name, "family": p.family, "top-1 (%)": p.top1, "top-5 (%)": p.top5,
              "params": p.params, "GMACs per view": round(p.macs_per_view / 1e9, 2), "views": p.views,
              "GMACs × views": round(p.macs / 1e9, 1),
              **({"time × views (s)": round(costs[p.name], 3) if costs[p.name] is not None else None}
                 if cost == "time" else {}),
              "on the frontier": p.name in front, "protocol": p.protocol, "published with": p.metrics_protocol,
              "source": p.page} for p in sorted(points, key=lambda p: -p.top1)]
    st.dataframe(table, hide_index=True, width="stretch", key="zoo_table",
                 column_config={"source": st.column_config.LinkColumn("source"),
                                "params": st.column_config.NumberColumn(format="localized")})

st.subheader("Open an entry")
names = [p.name for p in sorted(points, key=lambda p: -p.top1)]
linked = view.link.page.get("entry")
if view.entered and linked is not None and linked in by_name:
    st.session_state["zoo.entry"] = linked
elif view.opened and linked is not None and linked not in by_name:
    st.warning(f"entry={linked!r} ignored: not a catalog entry on {zoo.DATASET_NAMES.get(dataset, dataset)}")
if st.session_state.get("zoo.entry") not in names:
    st.session_state["zoo.entry"] = names[0]
entry = st.selectbox("entry (or click a point)", names, key="zoo.entry",
                     format_func=lambda n: f"{n} — top-1 {by_name[n].top1:g}%")
p = by_name[entry]
st.markdown(f"**{p.name}** ({p.family}, preset `{p.preset}`): top-1 **{p.top1:g}%** on "
            f"{zoo.DATASET_NAMES.get(p.dataset, p.dataset)}. Protocol: {p.protocol}. Published with: "
            f"{p.metrics_protocol}. Source: {p.page}")
config = weights_lookup.entry_config(p.name)
l1, l2 = st.columns(2)
l1.page_link("pages/model.py", label=f"open {p.preset} (as this entry builds it) in the Model page",
             icon=":material/view_in_ar:", query_params=make_link(p.preset, config))
l2.page_link("pages/run.py", label=f"run {p.name} on a clip in the Run page", icon=":material/play_arrow:",
             query_params=make_link(p.preset, None, {"weights": p.name}))

page_state = {"dataset": dataset if dataset != DATASETS[0] else None, "cost": cost if cost != "macs" else None,
              "entry": entry if entry != names[0] else None}
query = state.write_view(view, None, None, page_state)
state.share_box("zoo", query)
