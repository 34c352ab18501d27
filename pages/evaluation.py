"""Evaluation page: a results file of the ``evaluate`` command (uploaded, or a path under the results folder
``$VIDEOATTN_RESULTS_DIR``; paths outside it are refused) — top-1, top-5, mean class accuracy, where the time went,
per-class top-1, the confusion matrix with the most confused pairs, the worst clips and the clips that failed."""

from urllib.parse import urlencode

import streamlit as st

from videoattn_core import VideoAttnError, figures
from videoattn_core.evaluation import evaluate_into
from videoattn_core.evaluation import results
from pages import _state as state
from pages import _cache as cache

PAGE_FIELDS = {"file": str}


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


MAX_CLIPS = 64


st.title("Evaluation")
st.caption("The results of `python -m videoattn_core evaluate … --out results.jsonl` (one row per clip): the "
           "metrics as the papers report them, computed from the rows.")
view = state.open_view("evaluation", PAGE_FIELDS, uses_model=False)
state.show_ignored()
state.seed_page(view, {"evaluation.file": ("file", "")})
folder = results.results_folder()
if folder is not None and results.clip_folders():
    with st.expander("Evaluate here, on a few clips of a dataset on this server"):
        st.caption(f"A small run ({MAX_CLIPS} clips at most; the command line or torchrun for whole datasets). The "
                   f"annotations and clips must lie under `{results.DATA_DIR_ENV}`; the results file is written to "
                   f"the results folder and opened below.")
        c1, c2, c3 = st.columns(3)
        model = c1.text_input("model", "timesformer_base", key="evaluation.run.model",
                              help="A preset, or hf:ORG/NAME; its weights as for the command's --weights.")
        weights = c2.text_input("weights (catalog entry; empty: the model's own, or random)", key="evaluation.run.w")
        sets = c3.text_input("--set FIELD=VALUE …", key="evaluation.run.sets")
        c1, c2, c3 = st.columns(3)
        data_path = c1.text_input("annotations (file or class folders)", key="evaluation.run.data")
        root = c2.text_input("clips root (empty: beside the annotations)", key="evaluation.run.root")
        limit = c3.number_input("clips", 1, MAX_CLIPS, 16, key="evaluation.run.limit")
        if st.button("Evaluate", key="evaluation.run.go", disabled=not (model and data_path)):
            bar = st.progress(0.0, text="reading the dataset…")
            try:
                outcome = evaluate_into(model.strip(), weights.strip() or None, sets, data_path, root, int(limit),
                                        folder, lambda done, total: bar.progress(done / max(total, 1),
                                                                                 text=f"{done} of {total} clips"))
            except VideoAttnError as exc:
                bar.empty()
                st.error(str(exc))
            else:
                bar.progress(1.0, text=f"done: {outcome}")
                st.session_state["evaluation.source"] = "folder"
                st.session_state["evaluation.file"] = outcome
source = st.radio("results", ("folder", "upload"), horizontal=True, key="evaluation.source",
                  format_func={"folder": "a file in the results folder", "upload": "upload a file"}.get)
data, page_state = None, {}
if source == "upload":
    upload = st.file_uploader("results file (.jsonl)", type=["jsonl"], key="evaluation.upload")
    data = upload.getvalue() if upload is not None else None
elif folder is None:
    st.info(f"No results folder is configured: start the app with `{results.RESULTS_DIR_ENV}=/path/to/results` to "
            f"open the files there, or upload a file.")
else:
    found = results.list_results(folder)
    name = st.text_input(f"results file (a path under {folder})", key="evaluation.file",
                         placeholder=found[0] if found else "results.jsonl")
    st.caption("Files there: " + (", ".join(f"`{f}`" for f in found[:12]) or "none yet")
               + (f" and {len(found) - 12} more" if len(found) > 12 else ""))
    if name:
        page_state["file"] = name
        try:
            data = results.results_file(name, folder).read_bytes()
        except VideoAttnError as exc:
            st.error(str(exc))
query = state.write_view(view, None, None, page_state)
if data is None:
    st.stop()
try:
    header, rows, metrics = cache.evaluation_report(data)
except VideoAttnError as exc:
    st.error(str(exc))
    st.stop()

views = header.get("views") or [1, 1]
st.caption(f"**{header['model']}** · weights: {header['weights']} · {views[0]} clip(s) × {views[1]} crop(s) · "
           f"labels matched {header.get('match')} · data: `{header.get('data')}` ({header.get('format')})")
if header.get("seed") is not None:
    st.warning("Random weights: the model was randomly initialised, so these numbers mean nothing.")
cols = st.columns(5)
cols[0].metric("top-1", _pct(metrics["top1"]))
cols[1].metric("top-5", _pct(metrics["top5"]))
cols[2].metric("mean class accuracy", _pct(metrics["mean_class_accuracy"]),
               help="The top-1 of each class with clips, averaged over those classes.")
cols[3].metric("clips scored", f"{metrics['scored']} of {header.get('clips', metrics['clips'])}")
cols[4].metric("errors", str(metrics["errors"]))
timing = metrics["timing"]
if timing["decode_s"] or timing["forward_s"]:
    st.caption(f"Time summed over the clips: decoding {timing['decode_s']:.1f} s ({timing['decode_share']:.0%}), "
               f"forward {timing['forward_s']:.1f} s. Decoding runs in the loader's workers, overlapped with the "
               f"forward.")
if not metrics["scored"]:
    st.info("No clip of this file was classified.")
    st.stop()

per_class = metrics["per_class"]
left, right = st.columns(2)
left.plotly_chart(figures.per_class_accuracy([c["label"] for c in per_class], [c["accuracy"] for c in per_class],
                                             [c["clips"] for c in per_class], title="top-1 per class",
                                             mean=metrics["mean_class_accuracy"]), key="evaluation.per_class")
confusion = metrics["confusion"]
right.plotly_chart(figures.confusion_heatmap(confusion["labels"], confusion["matrix"],
                                             title="confusion matrix (rows: true class)"),
                   key="evaluation.confusion")
st.subheader("Most confused pairs")
st.dataframe([{"true class": c["true_label"], "predicted": c["predicted_label"], "clips": c["clips"],
               "share of the true class": f"{c['share']:.0%}"} for c in metrics["most_confused"]],
             hide_index=True, width="stretch", key="evaluation.pairs")

st.subheader("Worst clips")
st.caption("Misclassified clips, the least probable true class first (blank: outside the top-5). The link opens "
           "the evaluation's model and weights on the Run page, with the clip when it lies under the folders "
           f"`{results.DATA_DIR_ENV}` names (the server reads no other file for a link).")


def _run_url(path: str) -> str | None:
    try:
        clip = "file:" + str(results.server_clip(path))
    except VideoAttnError:
        clip = None
    link = results.run_link(header, clip)
    return "/run?" + urlencode(link) if link else None


worst = [{"clip": w["path"], "label": w["label"], "predicted": w["predicted"],
          "probability": round(w["probability"], 4),
          "true class probability": None if w["true_probability"] is None else round(w["true_probability"], 4),
          "run": _run_url(w["path"])} for w in metrics["worst"]]
st.dataframe(worst, hide_index=True, width="stretch", key="evaluation.worst",
             column_config={"run": st.column_config.LinkColumn("run", display_text="open on Run")})
if metrics["error_rows"]:
    st.subheader(f"Clips that could not be classified ({metrics['errors']})")
    st.dataframe(metrics["error_rows"], hide_index=True, width="stretch", key="evaluation.errors")
if page_state:
    state.share_box("evaluation", query)
