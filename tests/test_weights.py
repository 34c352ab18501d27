"""Published weights: the catalog's facts, the caches, and the download path end to end against an HTTP server
the test starts on 127.0.0.1 (success, hash mismatch, interrupted transfer, 404, no network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import threading
import time
from dataclasses import replace

import pytest
import torch

import videoattn_core as vac
from videoattn_core.weights import downloads as D
from videoattn_core.weights import lookup as W
from videoattn_core.weights.catalog.records import DATASET_CLASSES, hash_prefix


# ------------------------------------------------------------------------------------------------ local server


class _Server:
    """A bounded HTTP server on 127.0.0.1 serving ``routes``: path -> (status, body, headers, truncate_to).

    Paths in ``ranged`` answer a ``Range: bytes=N-`` request with 206 and the rest of the body; a path in ``stall``
    sends its first ``truncate_to`` bytes, then stays silent for that many seconds before closing; a path in
    ``delay`` waits that many seconds before its body."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, dict[str, str], int | None]] = {}
        self.requests: list[str] = []  # GET requests (transfers)
        self.heads: list[str] = []  # HEAD requests (metadata: length, and on the Hub commit and ETag)
        self.range_requests: list[str] = []  # the Range header of each GET that had one
        self.ranged: set[str] = set()
        self.stall: dict[str, float] = {}
        self.delay: dict[str, float] = {}
        routes, requests, heads, range_requests = self.routes, self.requests, self.heads, self.range_requests
        ranged, stall, delay = self.ranged, self.stall, self.delay

        class Handler(http.server.BaseHTTPRequestHandler):
            def _headers(self, first: int = 0):
                status, body, headers, cut = routes.get(self.path, (404, b"not found", {}, None))
                if first:
                    status, body = 206, body[first:]
                    cut = None if cut is None else max(cut - first, 0)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                return body, cut

            def do_HEAD(self):  # noqa: N802 (http.server's naming)
                heads.append(self.path)
                self._headers()

            def do_GET(self):  # noqa: N802
                requests.append(self.path)
                asked = self.headers.get("Range")
                if asked:
                    range_requests.append(asked)
                first = int(asked[len("bytes="):].rstrip("-")) if asked and self.path in ranged else 0
                body, cut = self._headers(first)
                time.sleep(delay.get(self.path, 0))
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                if cut is not None:
                    time.sleep(stall.get(self.path, 0))
                    self.close_connection = True

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.watchdog = threading.Timer(60, self.httpd.shutdown)  # stops by itself whatever happens

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with _Server() as s:
        yield s


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Fresh torch hub and Hugging Face caches under tmp_path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path


def _checkpoint_bytes() -> bytes:
    model = vac.build_model("timesformer_base", embed_dim=64, depth=2, num_heads=4, num_frames=4, img_size=32,
                            patch_size=8, num_classes=10)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(url: str, data: bytes, *, prefix: bool = True) -> vac.WeightsEntry:
    digest = hashlib.sha256(data).hexdigest()
    name = f"tiny_timesformer-{digest[:8]}.pth" if prefix else "tiny_timesformer.pth"
    base = W.CATALOG["timesformer_base.official_k400"]
    return replace(base, name="timesformer_base.test", source="torchvision", url=f"{url}/models/{name}", filename=name,
                   hash_prefix=hash_prefix(name), sha256=None, size_mb=None)


# ------------------------------------------------------------------------------------------------ catalog


def test_catalog_covers_the_presets_with_published_facts():
    names = set(W.CATALOG)
    for required in ["mvit_v1_b.torchvision_k400", "mvit_v2_s.torchvision_k400", "swin3d_t.torchvision_k400",
                     "swin3d_s.torchvision_k400", "swin3d_b.torchvision_k400", "swin3d_b.torchvision_k400_in22k",
                     "timesformer_base.hf_k400", "timesformer_base.hf_k600", "timesformer_base.hf_ssv2",
                     "timesformer_hr.hf_k400", "timesformer_l.official_k400", "mvit_v2_b.official_k400",
                     "mvit_v1_b_32x3.official_k400", "swin3d_b.official_ssv2"]:
        assert required in names
    mvit = W.CATALOG["mvit_v1_b.torchvision_k400"]
    assert mvit.url == "https://download.pytorch.org/models/mvit_v1_b-dbeb1030.pth"
    assert (mvit.hash_prefix, mvit.metrics, mvit.num_params, mvit.gflops) == (
        "dbeb1030", {"acc@1": 78.477, "acc@5": 93.582}, 36610672, 70.599)
    swin = W.CATALOG["swin3d_b.torchvision_k400_in22k"]
    assert swin.hash_prefix == "7c6ae6fa" and swin.metrics["acc@1"] == 81.643
    assert swin.recipe.mean == (0.485, 0.456, 0.406) and (swin.recipe.resize, swin.recipe.crop) == (256, 224)
    for entry in W.CATALOG.values():
        assert vac.get_preset(entry.preset)  # every entry belongs to a registered preset
        # acc@5 where the source publishes it (the Scenic model zoo and V-JEPA 2 give top-1 only)
        assert 0 < entry.metrics["acc@1"] < entry.metrics.get("acc@5", 100) <= 100 and entry.page and entry.layout
        assert DATASET_CLASSES[entry.dataset] == entry.num_classes
        if entry.dataset in W.LABEL_FILES:  # Diving48's names come with the checkpoint's config.json
            assert len(W.load_labels(entry.dataset)) == entry.num_classes
        assert entry.recipe.source and (entry.verification != "none" or "cannot be verified" in entry.notes)
        if entry.source == "torchvision":  # the hash prefix is the one torch hub reads from the file name
            assert entry.filename.split("-")[-1].startswith(entry.hash_prefix) and entry.verification != "none"


def test_recipes_from_their_sources():
    base = W.recipe_for("timesformer_base")
    assert (base.num_frames, base.sampling_rate, base.resize, base.crop, base.mean) == (8, 32, 224, 224, (0.45,) * 3)
    hr = W.recipe_for("timesformer_hr")
    assert (hr.num_frames, hr.sampling_rate, hr.crop) == (16, 16, 448)
    assert W.recipe_for("timesformer_l").num_frames == 96
    assert W.CATALOG["timesformer_base.hf_ssv2"].recipe.sampling == "uniform"
    assert W.CATALOG["timesformer_l.official_ssv2"].overrides == {"num_classes": 174, "num_frames": 64}
    mvit = W.recipe_for("mvit_v2_s")
    assert (mvit.num_frames, mvit.sampling_rate, mvit.resize, mvit.crop, mvit.std) == (16, 4, 256, 224, (0.225,) * 3)
    assert W.recipe_for("mvit_v2_b").num_frames == 32 and W.recipe_for("mvit_v1_b_32x3").sampling_rate == 3
    assert W.recipe_for("swin3d_t").num_frames == 32 and W.recipe_for("swin3d_l").crop == 224
    for preset in vac.list_models():
        if type(vac.get_preset(preset).config).has_head:
            assert W.recipe_for(preset).num_frames >= 1  # every classifier preset has a recipe
    with pytest.raises(vac.ConfigError, match="no classification head"):
        W.recipe_for("fiery_temporal")


def test_pyslowfast_entries_name_the_configs_and_pages_slowfast_has():
    """SlowFast's MODEL_ZOO.md lists MViT v1 and MViTv2-S/B (the MViTv2 rows since commit 1aebd71, also in
    projects/mvitv2/README.md). Its K600 row names the config Kinetics/MVIT_B_32x3_CONV_K600, which the repository
    never had: configs/Kinetics/MVIT_B_32x3_CONV.yaml says NUM_CLASSES "400 # or 600 for K600"."""
    k600 = W.CATALOG["mvit_v1_b_32x3.official_k600"]
    assert "configs/Kinetics/MVIT_B_32x3_CONV.yaml with MODEL.NUM_CLASSES 600" in k600.recipe.source
    assert "_K600.yaml" not in k600.recipe.source and "does not contain" in k600.notes
    assert k600.num_classes == 600 and (k600.recipe.num_frames, k600.recipe.sampling_rate) == (32, 3)
    for name in ("mvit_v2_s.official_k400", "mvit_v2_b.official_k400"):
        entry = W.CATALOG[name]
        assert entry.page == "https://github.com/facebookresearch/SlowFast/blob/main/MODEL_ZOO.md"
        assert "projects/mvitv2/README.md" in entry.metrics_protocol


def test_label_lists():
    k400, k600, ssv2 = W.load_labels("kinetics400"), W.load_labels("kinetics600"), W.load_labels("ssv2")
    assert (len(k400), len(k600), len(ssv2)) == (400, 600, 174)
    assert k400[:2] == ["abseiling", "air drumming"] and k400[-1] == "zumba" and k400 == sorted(k400)
    assert k600[1] == "acting in play" and len(set(k600)) == 600
    assert ssv2[0] == "Approaching something with your camera" and ssv2[-1] == "Wiping something off of something"
    assert W.labels_from_hf_config({"id2label": {"1": "b", "0": "a"}}) == ["a", "b"]
    assert W.labels_from_hf_config({"id2label": {"0": "a", "2": "c"}}) is None  # gaps: not an index list
    with pytest.raises(vac.WeightsError, match="no label list for 'ucf101'"):
        W.load_labels("ucf101")


def test_unknown_entry_names_its_neighbours():
    with pytest.raises(vac.WeightsError, match=r"unknown weights 'timesformer_base.k400'; entries for "
                                               r"timesformer_base: timesformer_base.hf_k400"):
        W.get_entry("timesformer_base.k400")


# ------------------------------------------------------------------------------------------------ caches


def test_cache_locations_follow_torch_and_hugging_face(caches, monkeypatch):
    assert D.torch_hub_checkpoints() == caches / "torch" / "hub" / "checkpoints"
    assert D.hf_hub_cache() == caches / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(caches / "elsewhere"))
    assert D.hf_hub_cache() == caches / "elsewhere"
    entry = W.CATALOG["timesformer_base.hf_k400"]
    assert D.target_path(entry).parent.parent.parent == caches / "elsewhere" / \
        "models--facebook--timesformer-base-finetuned-k400"


def test_files_already_cached_are_reused_without_network(caches):
    dead = f"http://127.0.0.1:{_closed_port()}"
    tv = replace(W.CATALOG["mvit_v1_b.torchvision_k400"], url=dead + "/mvit_v1_b-dbeb1030.pth")
    path = D.torch_hub_checkpoints() / tv.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights placed by hand")
    assert D.get_weights(tv) == path
    # the Hugging Face cache layout: refs/main names the snapshot holding the files
    hf = W.CATALOG["timesformer_base.hf_k400"]
    repo = D.hf_hub_cache() / "models--facebook--timesformer-base-finetuned-k400"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "pytorch_model.bin").write_bytes(b"x")
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    assert D.get_weights(hf) == snapshot


# ------------------------------------------------------------------------------------------------ download


def test_download_verifies_and_stores_in_torch_hub_cache(server, caches, capsys):
    data = _checkpoint_bytes()
    entry = _entry(server.url, data)
    server.routes[f"/models/{entry.filename}"] = (200, data, {}, None)
    path = D.get_weights(entry)
    assert path == caches / "torch" / "hub" / "checkpoints" / entry.filename
    assert path.read_bytes() == data and not list(path.parent.glob("*.partial"))
    assert "downloading" in capsys.readouterr().err  # a progress bar on stderr
    model = vac.build_model("timesformer_base", embed_dim=64, depth=2, num_heads=4, num_frames=4, img_size=32,
                            patch_size=8, num_classes=10)
    vac.load_checkpoint(model, path)
    assert D.get_weights(entry) == path and len(server.requests) == 1  # second time: from the cache


def test_hash_mismatch_is_refused_and_nothing_kept(server, caches):
    data = _checkpoint_bytes()
    entry = _entry(server.url, data)
    server.routes[f"/models/{entry.filename}"] = (200, data + b"tampered", {}, None)
    with pytest.raises(vac.WeightsError, match=rf"hash mismatch: the sha256 should start with {entry.hash_prefix}"):
        D.get_weights(entry, progress=False)
    folder = caches / "torch" / "hub" / "checkpoints"
    assert not any(folder.iterdir())
    full = replace(entry, hash_prefix=None, sha256="0" * 64)
    server.routes[f"/models/{entry.filename}"] = (200, data, {}, None)
    with pytest.raises(vac.WeightsError, match=r"sha256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
        D.get_weights(full, progress=False)
    sized = replace(entry, hash_prefix=None, size_mb=10.0)
    with pytest.raises(vac.WeightsError, match=r"size mismatch: expected about 10 × 1048576 bytes"):
        D.get_weights(sized, progress=False)
    assert not any(folder.iterdir())


def test_interrupted_transfer_is_refused_then_resumed_where_it_stopped(server, caches):
    data = _checkpoint_bytes()
    entry = _entry(server.url, data)
    path = f"/models/{entry.filename}"
    server.routes[path] = (200, data, {}, len(data) // 3)
    server.ranged.add(path)
    folder = caches / "torch" / "hub" / "checkpoints"
    with pytest.raises(vac.WeightsError, match=r"transfer of .* was interrupted.*run again to resume"):
        D.get_weights(entry, progress=False)
    kept = folder / f"{entry.filename}.partial"
    assert [p.name for p in folder.iterdir()] == [kept.name] and kept.read_bytes() == data[:len(data) // 3]
    assert D.cached_path(entry) is None  # never taken for the file

    server.routes[path] = (200, data, {}, None)
    assert D.get_weights(entry, progress=False).read_bytes() == data
    assert server.range_requests == [f"bytes={len(data) // 3}-"]  # only the rest was asked for
    assert [p.name for p in folder.iterdir()] == [entry.filename]


def test_a_server_that_ignores_ranges_sends_the_file_again_from_the_start(server, caches):
    data = _checkpoint_bytes()
    entry = _entry(server.url, data)
    path = f"/models/{entry.filename}"
    server.routes[path] = (200, data, {}, len(data) // 2)
    with pytest.raises(vac.WeightsError, match=r"interrupted"):
        D.get_weights(entry, progress=False)
    server.routes[path] = (200, data, {}, None)
    assert D.get_weights(entry, progress=False).read_bytes() == data  # 200, not 206: not appended to what was kept
    assert server.range_requests == [f"bytes={len(data) // 2}-"]


def test_a_stalled_transfer_ends_after_the_timeout_and_resumes_later(server, caches):
    data = _checkpoint_bytes()
    entry = _entry(server.url, data)
    path = f"/models/{entry.filename}"
    server.routes[path] = (200, data, {}, len(data) // 2)
    server.stall[path] = 5.0
    server.ranged.add(path)
    start = time.monotonic()
    with pytest.raises(vac.WeightsError, match=r"transfer of .* stalled: nothing arrived for 0.5 s; run again to "
                                               r"resume, or download it by hand"):
        D.get_weights(entry, progress=False, timeout=0.5)
    assert time.monotonic() - start < 4  # not the server's 5 s of silence, let alone forever
    server.routes[path] = (200, data, {}, None)
    assert D.get_weights(entry, progress=False).read_bytes() == data
    assert server.range_requests == [f"bytes={len(data) // 2}-"]


def test_concurrent_fetches_of_one_file_transfer_it_once(server, caches):
    data = _checkpoint_bytes()
    entry = _entry(server.url, data)
    server.routes[f"/models/{entry.filename}"] = (200, data, {}, None)
    server.delay[f"/models/{entry.filename}"] = 0.5  # the first transfer lasts until the others have asked too
    results, errors = [], []

    def fetch():
        try:
            results.append(D.get_weights(entry, progress=False))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 3 and len(set(results)) == 1
    assert results[0].read_bytes() == data and len(server.requests) == 1  # one transfer; the others waited for it
    assert [p.name for p in results[0].parent.iterdir()] == [entry.filename]


def test_a_lock_file_removed_while_it_was_awaited_is_opened_again(server, caches, monkeypatch):
    """The race that the concurrent fetches above can meet: the ``.partial`` file this fetch waited on was removed
    (its holder found the checkpoint fetched) just as this one took the lock: it opens the file now there."""
    data = _checkpoint_bytes()
    entry = _entry(server.url, data)
    server.routes[f"/models/{entry.filename}"] = (200, data, {}, None)
    real, removed = D.os.path.samefile, []

    def removed_first(a, b):
        if not removed:
            removed.append(a)
            D.os.unlink(a)
        return real(a, b)

    monkeypatch.setattr(D.os.path, "samefile", removed_first)
    path = D.get_weights(entry, progress=False)
    assert removed and path.read_bytes() == data


def test_404_names_the_url_and_where_to_place_the_file(server, caches):
    entry = _entry(server.url, b"whatever")
    with pytest.raises(vac.WeightsError) as info:
        D.get_weights(entry, progress=False)
    message = str(info.value)
    assert f"{entry.url} answered 404" in message
    assert str(caches / "torch" / "hub" / "checkpoints" / entry.filename) in message


def test_no_network_names_the_url_and_the_manual_path(caches):
    entry = _entry(f"http://127.0.0.1:{_closed_port()}", b"whatever")
    with pytest.raises(vac.WeightsError) as info:
        D.get_weights(entry, progress=False, timeout=5)
    message = str(info.value)
    assert message.startswith(f"cannot reach {entry.url}") and "no network?" in message
    assert f"place it at {caches / 'torch' / 'hub' / 'checkpoints' / entry.filename}" in message


def test_entries_without_a_direct_link_say_where_to_put_the_file(caches):
    with pytest.raises(vac.WeightsError, match=r"cannot be downloaded automatically .*drive.google.com.*place it at"):
        D.get_weights("mvit_v1_b.official_k400")


def test_hugging_face_download_fills_the_hf_cache_with_labels(server, caches, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    data = _checkpoint_bytes()
    model = vac.build_model("timesformer_base", embed_dim=64, depth=2, num_heads=4, num_frames=4, img_size=32,
                            patch_size=8, num_classes=10)
    model.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    config = {"model_type": "timesformer", "id2label": {str(i): f"action {i}" for i in range(10)}}
    commit = "c" * 40
    repo = "facebook/timesformer-tiny-test"
    # what the Hub answers for a file: the commit of the revision, and an ETag (for a Git LFS file, its sha256)
    config_bytes = json.dumps(config).encode()
    config_etag = hashlib.sha1(b"blob %d\0" % len(config_bytes) + config_bytes).hexdigest()  # its git blob id
    server.routes[f"/{repo}/resolve/main/config.json"] = (
        200, config_bytes, {"X-Repo-Commit": commit, "ETag": f'"{config_etag}"'}, None)
    server.routes[f"/{repo}/resolve/main/pytorch_model.bin"] = (
        200, data, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, None)
    entry = replace(W.CATALOG["timesformer_base.hf_k400"], hf_repo=repo, size_mb=None,
                    sha256=hashlib.sha256(data).hexdigest())
    snapshot = D.get_weights(entry, progress=False)
    root = caches / "hf" / "hub" / "models--facebook--timesformer-tiny-test"
    assert snapshot == root / "snapshots" / commit and (root / "refs" / "main").read_text() == commit
    assert (root / "blobs" / hashlib.sha256(data).hexdigest()).read_bytes() == data
    fresh = vac.build_model("timesformer_base", embed_dim=64, depth=2, num_heads=4, num_frames=4, img_size=32,
                            patch_size=8, num_classes=10)
    report = vac.load_checkpoint(fresh, snapshot)
    assert W.labels_from_hf_config(report.metadata["config"])[3] == "action 3"
    assert torch.equal(fresh.head.weight, model.head.weight)
    # huggingface_hub also asks the endpoint once per process for its agent registry (/api/agent-harnesses,
    # telemetry): only requests for the repository's files count here
    def files(log):
        return [p for p in log if p.startswith(f"/{repo}/")]

    assert len(files(server.requests)) == 2
    heads = len(server.heads)
    assert D.get_weights(entry) == snapshot and len(files(server.requests)) == 2  # cached: no new request
    assert len(server.heads) == heads


def test_hugging_face_failures_say_what_happened_and_keep_no_bad_file(server, caches, monkeypatch):
    data = _checkpoint_bytes()
    repo = "facebook/timesformer-tiny-test"
    entry = replace(W.CATALOG["timesformer_base.hf_k400"], hf_repo=repo, size_mb=None, sha256="0" * 64)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(vac.WeightsError) as info:
        D.get_weights(entry, progress=False, timeout=5)
    assert str(info.value).startswith(f"cannot reach http://127.0.0.1") and "no network?" in str(info.value)
    assert str(D.target_path(entry).parent) in str(info.value)  # where to place files fetched by hand
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    with pytest.raises(vac.WeightsError, match=rf"{server.url}/{repo}/resolve/main/config.json answered 404"):
        D.get_weights(entry, progress=False)
    commit = "c" * 40
    for name, body in (("config.json", b"{}"), ("pytorch_model.bin", data)):
        server.routes[f"/{repo}/resolve/main/{name}"] = (
            200, body, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(body).hexdigest()}"'}, None)
    with pytest.raises(vac.WeightsError, match=r"sha256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
        D.get_weights(entry, progress=False)
    root = caches / "hf" / "hub" / "models--facebook--timesformer-tiny-test"
    assert not (root / "blobs" / hashlib.sha256(data).hexdigest()).exists()
    assert D.cached_path(entry) is None or not (D.cached_path(entry) / "pytorch_model.bin").exists()
    server.routes[f"/{repo}/resolve/main/pytorch_model.bin"] = (
        200, data, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, len(data) // 3)
    with pytest.raises(vac.WeightsError, match=r"transfer of .*pytorch_model.bin was interrupted .*run again"):
        D.get_weights(replace(entry, sha256=hashlib.sha256(data).hexdigest()), progress=False)
