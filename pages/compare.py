"""Compare page: two to four configurations side by side — parameters, MACs, tokens per stage, and (on
request) measured forward time and peak memory on this device; each opens in the Model page."""

import streamlit as st

import videoattn_core as vac
from pages import _cache as cache
from pages import _state as state
from pages import _widgets as widgets
from videoattn_core import figures, links
from videoattn_core.cost import growth
from videoattn_core.links import make_link
from videoattn_core.run import devices

SLOTS = ("c1", "c2", "c3", "c4")
DEFAULTS = {"c1": "timesformer_base", "c2": "timesformer_base;attention_type=joint_space_time",
            "c3": "mvit_v2_s", "c4": "swin3d_t"}


def _spec(text: str) -> str:
    links.spec_config(*links.parse_spec(text))  # raises ValueError or ConfigError if invalid
    return text


PAGE_FIELDS = {**{slot: _spec for slot in SLOTS}, "n": lambda text: state.integer(text, "n", 2, 4)}

st.title("Compare")
view = state.open_view("compare", PAGE_FIELDS, uses_model=False)
state.show_ignored()

state.seed_page(view, {"compare.n": ("n", 3)})
n = st.slider("configurations", 2, 4, key="compare.n")
seeds = {}
for slot in SLOTS:
    preset, pairs = links.parse_spec(view.link.page.get(slot, DEFAULTS[slot]))
    seeds[f"compare.{slot}.preset"] = (slot + "_preset", preset)
    seeds[f"compare.{slot}.overrides"] = (slot + "_overrides", "; ".join(pairs))
view.link.page.update({name: default for name, default in seeds.values()})
state.seed_page(view, seeds)

configs: list[tuple[str, str, vac.ModelConfig]] = []
columns = st.columns(n)
for slot, column in zip(SLOTS[:n], columns):
    with column:
        preset = st.selectbox(f"configuration {slot[1]}", vac.list_models(), key=f"compare.{slot}.preset")
        overrides = st.text_input("overrides (field=value; …)", key=f"compare.{slot}.overrides",
                                  help="Any hyperparameter of the preset by its config field name, e.g. "
                                       "attention_type=joint_space_time; num_frames=16")
        try:
            config = links.spec_config(preset, [p for p in overrides.split(";") if p.strip()])
        except vac.ConfigError as exc:
            st.error(str(exc), icon=":material/warning:")
            continue
        configs.append((slot, preset, config))
        st.page_link("pages/model.py", label="open in the Model page", icon=":material/view_in_ar:",
                     query_params=make_link(preset, config))

rows, summaries = [], {}
for slot, preset, config in configs:
    try:
        s = cache.summary(config)
    except vac.VideoAttnError as exc:
        st.error(f"configuration {slot[1]}: {exc}")
        continue
    label = f"{slot[1]}. {links.spec_text(preset, config)}"
    summaries[label] = (s, config)
    memory = cache.memory_plan(config)
    rows.append({"configuration": label, "parameters": s.params, "GMACs per view": round(s.macs / 1e9, 2),
                 "GFLOPs per view": round(s.flops / 1e9, 2), "views": s.views,
                 "input": "×".join(map(str, s.input_shape)), "token grids": growth.stage_grids(s),
                 "tokens per stage": " → ".join(f"{t:,}" for _, t in growth.stage_tokens(s)),
                 "est. memory fp32 (MiB)": round(memory["total_bytes"] / 2**20, 1)})

if rows:
    st.dataframe(rows, hide_index=True, width="stretch", key="compare_table",
                 column_config={"parameters": st.column_config.NumberColumn(format="localized")})
    labels = list(summaries)
    colors = {x: figures.family_color(summaries[x][1].family) for x in labels}  # one colour per model family
    left, right = st.columns(2)
    left.plotly_chart(figures.grouped_bars(labels, {"parameters": [summaries[x][0].params for x in labels]},
                                           y_title="parameters", title="parameters",
                                           colors=[colors[x] for x in labels]), key="compare_params")
    right.plotly_chart(figures.grouped_bars(labels, {"MACs per view": [summaries[x][0].macs for x in labels]},
                                            y_title="MACs", title="MACs per view",
                                            colors=[colors[x] for x in labels]), key="compare_macs")
    st.plotly_chart(figures.token_counts({x: growth.stage_tokens(summaries[x][0]) for x in labels},
                                         title="tokens per stage", colors=[colors[x] for x in labels]),
                    key="compare_tokens")

    st.subheader("Measured on this device")
    device = devices.default_device()
    dtype = "float32"
    st.caption(f"One forward of each configuration with random weights on a random clip of its input shape, on "
               f"**{device}** ({dtype}), after a warm-up forward. Peak memory: "
               + ("CUDA's allocator peak." if device == "cuda" else
                  "weights, input and the tensors the forward holds at once, counted as it runs."))
    token = (tuple(summaries[x][1] for x in labels), device)
    if st.button("Measure forward time and peak memory", key="compare.measure"):
        st.session_state["compare.measured"] = token
    if st.session_state.get("compare.measured") == token:
        measured = {}
        progress = st.progress(0.0, text="measuring…")
        for i, label in enumerate(labels):
            s, config = summaries[label]
            refusal = cache.memory_check(s, widgets.RunInputs("", "random", device, dtype))
            if refusal:
                st.error(f"{label}: {refusal}")
                continue
            progress.progress(i / len(labels), text=f"measuring {label}…")
            measured[label] = cache.measure_forward(config, device, dtype)
        progress.progress(1.0, text="done")
        if measured:
            names = list(measured)
            left, right = st.columns(2)
            left.plotly_chart(figures.grouped_bars(names, {"forward time (ms)": [1e3 * measured[x]["time_s"]
                                                                                  for x in names]},
                                                   y_title="ms", title="forward time",
                                                   colors=[colors[x] for x in names]), key="compare_time")
            right.plotly_chart(figures.grouped_bars(names, {"peak memory (bytes)": [measured[x]["peak_bytes"]
                                                                                     for x in names]},
                                                    y_title="bytes", title="peak memory",
                                                    colors=[colors[x] for x in names]), key="compare_memory")
            st.dataframe([{"configuration": x, "forward (ms)": round(1e3 * measured[x]["time_s"], 1),
                           "peak memory (MiB)": round(measured[x]["peak_bytes"] / 2**20, 1)} for x in names],
                         hide_index=True, key="compare_measured_table")

page_state = {"n": n if n != 3 else None}
for slot, preset, config in configs:
    text = links.spec_text(preset, config)
    page_state[slot] = text if text != DEFAULTS[slot] else None
query = state.write_view(view, None, None, page_state)
state.share_box("compare", query)
