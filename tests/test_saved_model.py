"""The TF Serving SavedModel: every signature, from a freshly exported model,
called directly, through PredictRequest protos and through REST JSON bodies."""

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from vdsr_tf.inference.upscaler import Upscaler
from vdsr_tf.io.images import sample_images_dir

# Every test here is in the slow tier: exports SavedModels (about 16 s for the module's first) and runs their graphs.
pytestmark = pytest.mark.slow(
    reason="exports SavedModels (about 16 s for the module's first) and runs their graphs"
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sample_images_dir()
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_weights):
    """(weights path, loaded SavedModel, version dir) via the vdsr-export CLI."""
    weights = tiny_weights
    out = tmp_path_factory.mktemp("export") / "models"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vdsr_tf.cli.export",
            "--format=saved_model",
            f"--output={out}",
            f"--weights={weights}",
        ],
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    version_dir = out / "vdsr" / "1"  # no --version: the first free number
    return weights, tf.saved_model.load(str(version_dir), tags=["serve"]), str(version_dir)


@pytest.fixture(scope="module")
def upscaler(exported):
    return Upscaler(exported[0], tile=0)


def _png(array, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def _decode(png):
    return np.asarray(Image.open(io.BytesIO(png)))


def test_layout_tag_and_signatures(exported):
    _, loaded, path = exported
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert os.path.isdir(os.path.join(path, "variables"))
    assert set(loaded.signatures) == {"serving_default", "upscale_image", "upscale_rgb"}
    sig = loaded.signatures["upscale_image"]
    assert set(sig.structured_input_signature[1]) == {"image_bytes", "scale"}
    assert all(n.endswith("_bytes") for n in sig.structured_input_signature[1] if n != "scale")


def test_serving_default_is_the_network(exported, upscaler):
    y = RNG.random((2, 19, 23, 1)).astype(np.float32)
    out = exported[1].signatures["serving_default"](y=tf.constant(y))["sr_y"].numpy()
    assert out.shape == y.shape
    for i in range(2):
        np.testing.assert_allclose(out[i, :, :, 0], upscaler.predict_y(y[i, :, :, 0]), atol=1e-5)


def test_upscale_image_mixed_batch_matches_the_upscaler(exported, upscaler):
    images = [
        RNG.integers(0, 256, (17, 23, 3)).astype(np.uint8),  # RGB
        RNG.integers(0, 256, (11, 9)).astype(np.uint8),  # grey
        RNG.integers(0, 256, (10, 12, 4)).astype(np.uint8),  # RGBA
        RNG.integers(0, 256, (9, 14, 2)).astype(np.uint8),
    ]  # grey + alpha
    data = [_png(images[0]), _png(images[1]), _png(images[2]), _png(images[3])]
    data.append(_png(images[0], "WEBP"))
    scales = [2.0, 3.0, 2.5, 3.7, 2.0]
    out = (
        exported[1]
        .signatures["upscale_image"](image_bytes=tf.constant(data), scale=tf.constant(scales))[
            "png_bytes"
        ]
        .numpy()
    )
    assert len(out) == 5
    for png, image, scale in zip(out, images + [images[0]], scales):
        got = _decode(png)
        want = upscaler.upscale(image, scale=scale)
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want).max() <= 1


def test_upscale_image_reads_jpeg(exported, upscaler):
    jpeg = _png(RNG.integers(0, 256, (16, 16, 3)).astype(np.uint8), "JPEG")
    out = (
        exported[1]
        .signatures["upscale_image"](image_bytes=tf.constant([jpeg]), scale=tf.constant([2.0]))[
            "png_bytes"
        ]
        .numpy()
    )
    # JPEG decoders differ by a few levels (TF's vs Pillow's IDCT): compare on TF's decode.
    want = upscaler.upscale(tf.io.decode_jpeg(jpeg).numpy(), scale=2)
    assert np.abs(_decode(out[0]).astype(int) - want).max() <= 1


@pytest.mark.parametrize(
    "data,scale",
    [([b"not an image"], [2.0]), ([b""], [2.0]), (["PNG"], [1.0]), (["PNG", "PNG"], [2.0])],
)
def test_bad_input_is_invalid_argument(exported, data, scale):
    png = _png(np.zeros((8, 8, 3), np.uint8))
    data = [png if d == "PNG" else d for d in data]
    with pytest.raises(tf.errors.InvalidArgumentError):
        exported[1].signatures["upscale_image"](
            image_bytes=tf.constant(data), scale=tf.constant(scale)
        )


def test_upscale_rgb(exported, upscaler):
    rgb = RNG.integers(0, 256, (1, 13, 21, 3)).astype(np.uint8)
    out = exported[1].signatures["upscale_rgb"](rgb=tf.constant(rgb), scale=tf.constant(2.5))
    got = out["sr_rgb"].numpy()
    assert got.dtype == np.uint8 and got.shape == (1, 33, 53, 3)
    assert np.abs(got[0].astype(int) - upscaler.upscale(rgb[0], scale=2.5)).max() <= 1


# -- TF Serving's request formats, run through the signatures ------------------------
def _serve_proto(loaded, request):
    """What TF Serving does with a PredictRequest: tensors in, signature, tensors out."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    sig = loaded.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    response = predict_pb2.PredictResponse()
    for k, v in sig(**inputs).items():
        response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
    return predict_pb2.PredictResponse.FromString(response.SerializeToString())


def test_warmup_records_replay_against_every_signature(exported):
    """assets.extra/tf_serving_warmup_requests: PredictionLog records (TF Serving's
    warm-up format) that cover each signature and run as TF Serving replays them."""
    from tensorflow_serving.apis import prediction_log_pb2

    _, loaded, path = exported
    warmup = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    records = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(warmup)
    ]
    assert len(records) >= 4
    signatures = [r.predict_log.request.model_spec.signature_name for r in records]
    assert set(signatures) == set(loaded.signatures)
    assert {r.predict_log.request.model_spec.name for r in records} == {"vdsr"}
    sizes = {
        tuple(d.size for d in r.predict_log.request.inputs["y"].tensor_shape.dim)
        for r in records
        if r.predict_log.request.model_spec.signature_name == "serving_default"
    }
    assert len(sizes) >= 2  # a small request and a full tile
    for record in records:
        response = _serve_proto(loaded, record.predict_log.request)
        assert response.outputs, record.predict_log.request.model_spec.signature_name
        if "png_bytes" in response.outputs:
            pngs = response.outputs["png_bytes"].string_val
            assert [_decode(p).shape for p in pngs] == [(96, 128, 3), (120, 120)]


def test_versions_are_numbered_and_never_overwritten(exported, tmp_path):
    """The acceptance check: a second export without --version writes version 2
    beside version 1; an explicit existing version is refused without
    --overwrite, and nothing changes."""
    from vdsr_tf.export.saved_model import export_saved_model, next_version
    from vdsr_tf.models.loading import load_pretrained

    weights, _, path = exported
    base = os.path.dirname(path)
    assert next_version(base) == 2 and next_version(str(tmp_path / "none")) == 1
    model = load_pretrained(weights)
    stamp = os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns
    with pytest.raises(FileExistsError, match="exists"):
        export_saved_model(model, os.path.dirname(base), version=1, warmup=False)
    assert os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns == stamp
    added = export_saved_model(model, os.path.dirname(base), warmup=False)
    assert added == os.path.join(base, "2") and sorted(os.listdir(base)) == ["1", "2"]


def test_predict_request_protos(exported, upscaler, load_script):
    from tensorflow_serving.apis import predict_pb2

    lr = np.asarray(Image.open(os.path.join(SAMPLES, "LR_bicubic", "X4", "bird.png")))
    request = load_script("export/serving/grpc_client.py").build_request(_png(lr), 4.0)
    response = _serve_proto(exported[1], request)
    got = _decode(response.outputs["png_bytes"].string_val[0])
    assert np.abs(got.astype(int) - upscaler.upscale(lr, scale=4)).max() <= 1

    y = RNG.random((1, 9, 9, 1)).astype(np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "vdsr"
    request.inputs["y"].CopyFrom(tf.make_tensor_proto(y))
    out = tf.make_ndarray(_serve_proto(exported[1], request).outputs["sr_y"])
    np.testing.assert_allclose(out[0, :, :, 0], upscaler.predict_y(y[0, :, :, 0]), atol=1e-5)

    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "upscale_rgb"
    request.inputs["rgb"].CopyFrom(tf.make_tensor_proto(lr[None]))
    request.inputs["scale"].CopyFrom(tf.make_tensor_proto(2.0, dtype=tf.float32))
    out = tf.make_ndarray(_serve_proto(exported[1], request).outputs["sr_rgb"])
    assert out.shape == (1, 144, 144, 3)


def _json_value(value):
    """TF Serving's JSON decoding of one value: {"b64": ...} is binary."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _serve_rest(loaded, body_text):
    """TF Serving's REST predict semantics (row and columnar formats), in-process."""
    body = json.loads(body_text)
    sig = loaded.signatures[body.get("signature_name", "serving_default")]
    names = list(sig.structured_input_signature[1])
    specs = sig.structured_input_signature[1]
    if "instances" in body:
        rows = body["instances"]
        if len(names) == 1 and not isinstance(rows[0], dict):
            rows = [{names[0]: r} for r in rows]
        inputs = {n: [_json_value(r[n]) for r in rows] for n in names}
        row_format = True
    else:
        cols = body["inputs"]
        cols = cols if isinstance(cols, dict) else {names[0]: cols}
        inputs = {n: _json_value(cols[n]) for n in names}
        row_format = False
    tensors = {n: tf.constant(inputs[n], dtype=specs[n].dtype) for n in names}
    outputs = sig(**tensors)

    def encode(name, value):
        if value.dtype == tf.string:
            return [{"b64": base64.b64encode(v).decode()} for v in value.numpy()]
        return value.numpy().tolist()

    if row_format:
        cols = {k: encode(k, v) for k, v in outputs.items()}
        n = len(next(iter(cols.values())))
        if len(cols) == 1:
            preds = next(iter(cols.values()))
        else:
            preds = [{k: v[i] for k, v in cols.items()} for i in range(n)]
        return json.dumps({"predictions": preds})
    return json.dumps({"outputs": {k: encode(k, v) for k, v in outputs.items()}})


def test_rest_bodies(exported, upscaler, load_script):
    rest = load_script("export/serving/rest_client.py")
    lr = np.asarray(Image.open(os.path.join(SAMPLES, "LR_bicubic", "X3", "butterfly.png")))
    want = upscaler.upscale(lr, scale=3)
    # Row format with b64, exactly what rest_client.py sends.
    body = json.dumps(rest.request_body(_png(lr), 3.0))
    got = _decode(rest.decode_response(json.loads(_serve_rest(exported[1], body))))
    assert np.abs(got.astype(int) - want).max() <= 1
    # Columnar format, two images of different sizes in one call.
    small = lr[:20, :30]
    body = json.dumps(
        {
            "signature_name": "upscale_image",
            "inputs": {
                "image_bytes": [
                    {"b64": base64.b64encode(_png(lr)).decode()},
                    {"b64": base64.b64encode(_png(small)).decode()},
                ],
                "scale": [3.0, 2.0],
            },
        }
    )
    outputs = json.loads(_serve_rest(exported[1], body))["outputs"]["png_bytes"]
    assert _decode(base64.b64decode(outputs[1]["b64"])).shape == (40, 60, 3)
    # serving_default with "instances" of nested lists.
    y = RNG.random((2, 6, 7, 1)).astype(np.float32)
    preds = json.loads(_serve_rest(exported[1], json.dumps({"instances": y.tolist()})))[
        "predictions"
    ]
    np.testing.assert_allclose(
        np.array(preds)[1, :, :, 0], upscaler.predict_y(y[1, :, :, 0]), atol=1e-5
    )


def test_acceptance_set5_files_match_vdsr_upscale(exported, tmp_path, datasets_dir):
    """upscale_image on Set5 LR files decodes within 1 grey level of vdsr-upscale
    (its batch, in-process: the command-line layer is tested in test_cli_upscale.py)."""
    weights, loaded, _ = exported
    cli_upscaler = Upscaler(weights)  # vdsr-upscale's defaults
    for scale in (2, 3, 4):
        lr_dir = os.path.join(datasets_dir, "Set5", "LR_bicubic", f"X{scale}")
        out = tmp_path / f"x{scale}"
        out.mkdir()
        assert cli_upscaler.upscale_files(lr_dir, str(out), scale=scale).status == 0
        names = sorted(os.listdir(out))
        data = [open(os.path.join(lr_dir, n), "rb").read() for n in names]
        pngs = loaded.signatures["upscale_image"](
            image_bytes=tf.constant(data), scale=tf.constant([float(scale)] * len(data))
        )
        for name, png in zip(names, pngs["png_bytes"].numpy()):
            want = np.asarray(Image.open(out / name))
            diff = np.abs(_decode(png).astype(int) - want)
            assert diff.max() <= 1, name
            assert np.mean(diff > 0) < 0.001, name


@pytest.mark.parametrize(
    "fmt,mode",
    [
        ("PNG", "RGB"),
        ("PNG", "LA"),
        ("JPEG", "RGB"),
        ("GIF", "P"),
        ("BMP", "RGB"),
        ("WEBP", "RGB"),
        ("WEBP", "RGBA"),
    ],
)
def test_header_size_reads_every_format(fmt, mode):
    from vdsr_tf.export.saved_model import header_size

    for h, w in ((37, 53), (300, 17)):
        buf = io.BytesIO()
        kwargs = {"lossless": True} if fmt == "WEBP" and mode == "RGBA" else {}
        Image.new(mode, (w, h)).save(buf, format=fmt, **kwargs)
        got = [int(v) for v in header_size(tf.constant(buf.getvalue()))]
        assert got == [h, w], (fmt, mode)
    assert [int(v) for v in header_size(tf.constant(b"junk"))] == [-1, -1]


def _png_header(width, height):
    """A PNG that claims width x height: signature and IHDR only, a few bytes."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_pixel_limit_is_checked_from_the_header(exported):
    """A 60000 x 60000 header (a few bytes on the wire) is refused before decoding."""
    sig = exported[1].signatures["upscale_image"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="input exceeds the pixel limit"):
        sig(image_bytes=tf.constant([_png_header(60000, 60000)]), scale=tf.constant([2.0]))
    small = _png(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="output exceeds the pixel limit"):
        sig(image_bytes=tf.constant([small]), scale=tf.constant([101.0]))  # 10100^2 pixels
    with pytest.raises(tf.errors.InvalidArgumentError, match="output exceeds the pixel limit"):
        exported[1].signatures["upscale_rgb"](
            rgb=tf.constant(np.zeros((1, 100, 100, 3), np.uint8)), scale=tf.constant(101.0)
        )


def test_full_hd_request_has_bounded_memory(exported, tmp_path):
    """A 1920x1080 x2 request succeeds, and the serving process stays under 2 GB.

    Memory comes from the graph's design (tile-by-tile enlargement and network,
    no dense resize matrices), so the tiny network shows it: the old graph
    peaked at 4.9 GB on this request with any network."""
    png = _png(RNG.integers(0, 256, (1080, 1920, 3)).astype(np.uint8))
    (tmp_path / "in.png").write_bytes(png)
    script = (
        "import resource, sys, tensorflow as tf\n"
        "loaded = tf.saved_model.load(sys.argv[1])\n"
        "data = open(sys.argv[2], 'rb').read()\n"
        "out = loaded.signatures['upscale_image'](image_bytes=tf.constant([data]),"
        " scale=tf.constant([2.0]))['png_bytes'].numpy()[0]\n"
        "open(sys.argv[3], 'wb').write(out)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            exported[2],
            str(tmp_path / "in.png"),
            str(tmp_path / "out.png"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_kib = int(proc.stdout.split()[-1])
    assert np.asarray(Image.open(tmp_path / "out.png")).shape == (2160, 3840, 3)
    assert peak_kib < 2 * 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_concurrent_requests_equal_one_request(exported):
    """Four requests at once (TF Serving runs each on its own thread) give the
    single request's PNG, byte for byte."""
    from concurrent.futures import ThreadPoolExecutor

    data = _png(RNG.integers(0, 256, (90, 130, 3)).astype(np.uint8))

    def request(_=None):
        return (
            exported[1]
            .signatures["upscale_image"](image_bytes=tf.constant([data]), scale=tf.constant([2.0]))[
                "png_bytes"
            ]
            .numpy()[0]
        )

    single = request()
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(request, range(8)))
    assert all(out == single for out in outputs)
    assert _decode(single).shape == (180, 260, 3)


def test_graph_runs_one_image_and_one_tile_at_a_time(exported):
    """Every loop of upscale_image (tf.map_fn over a batch's images, the tile
    loops) has parallel_iterations = 1 (tf.while_loop's default is 10), so a
    batch of requests holds one image's working memory at a time: the bound
    that BUILD.md's serving memory figures rest on."""
    graph = exported[1].signatures["upscale_image"].graph.as_graph_def()
    loops = [
        node.attr["parallel_iterations"].i
        for nodes in [graph.node] + [f.node_def for f in graph.library.function]
        for node in nodes
        if node.op in ("While", "StatelessWhile")
    ]
    assert len(loops) >= 3  # map_fn and the two tile loops (once per channel count, in TF 2.21)
    assert set(loops) == {1}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    shutil.which("tensorflow_model_server") is None,
    reason="tensorflow_model_server is not on PATH (TF Serving's binary cannot "
    "be installed on this machine); see export/serving/",
)
def test_real_tensorflow_model_server(exported, upscaler, load_script):
    _, _, path = exported
    grpc_port, rest_port = _free_port(), _free_port()
    server = subprocess.Popen(
        [
            "tensorflow_model_server",
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            "--model_name=vdsr",
            f"--model_base_path={os.path.dirname(path)}",
        ]
    )
    try:
        url = f"http://127.0.0.1:{rest_port}/v1/models/vdsr"
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        lr = np.asarray(Image.open(os.path.join(SAMPLES, "LR_bicubic", "X2", "bird.png")))
        rest = load_script("export/serving/rest_client.py")
        req = urllib.request.Request(
            url + ":predict", data=json.dumps(rest.request_body(_png(lr), 2.0)).encode()
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            got = _decode(rest.decode_response(json.load(resp)))
        assert np.abs(got.astype(int) - upscaler.upscale(lr, scale=2)).max() <= 1
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        )
        response = stub.Predict(
            load_script("export/serving/grpc_client.py").build_request(_png(lr), 2.0), timeout=120
        )
        got = _decode(response.outputs["png_bytes"].string_val[0])
        assert np.abs(got.astype(int) - upscaler.upscale(lr, scale=2)).max() <= 1
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_fuzzed_files_are_png_or_invalid_argument(exported, load_script):
    """A seeded sample of tools/fuzz_images.py through ``upscale_image``."""
    fuzz = load_script("tools/fuzz_images.py")
    summary = fuzz.run_signature(exported[1].signatures["upscale_image"], 120, seed=2026)
    assert summary["crashes"] == 0, summary["first_crashes"]
    assert summary["hangs"] == 0
    outcomes = summary["counts"]
    assert any(k.endswith("/output") for k in outcomes) and any(
        k.endswith("/error") for k in outcomes
    )


def test_animations_are_refused_before_decoding(exported):
    """TF's decoder is not memory safe on damaged animated WebP and keeps one
    frame of the others: every animation is an InvalidArgument, stills are not."""
    from vdsr_tf.export.saved_model import is_animation

    frames = [Image.fromarray(np.full((6, 7, 3), 50 * i, np.uint8)) for i in range(3)]
    for fmt in ("GIF", "WEBP", "PNG"):
        for animated in (True, False):
            buf = io.BytesIO()
            frames[0].save(
                buf,
                fmt,
                **(
                    {"save_all": True, "append_images": frames[1:], "loop": 0, "duration": 40}
                    if animated
                    else {}
                ),
            )
            assert bool(is_animation(tf.constant(buf.getvalue()))) == animated, fmt
            if animated:
                with pytest.raises(tf.errors.InvalidArgumentError, match="animated"):
                    exported[1].signatures["upscale_image"](
                        image_bytes=tf.constant([buf.getvalue()]), scale=tf.constant([2.0])
                    )
    for mode in ("RGB", "RGBA", "L"):  # stills of every WebP flavour (VP8, VP8L, VP8X)
        for kwargs in (
            {"lossless": True},
            {"quality": 80},
            {"exif": b"Exif\0\0MM\0*\0\0\0\x08\0\0"},
        ):
            buf = io.BytesIO()
            Image.new(mode, (5, 4)).save(buf, "WEBP", **kwargs)
            assert not bool(is_animation(tf.constant(buf.getvalue()))), (mode, kwargs)


def _batching_parameters_class():
    """TF Serving's BatchingParameters message (session_bundle_config.proto), rebuilt
    from its documented fields: tensorflow-serving-api does not ship that proto."""
    from google.protobuf import (
        descriptor_pb2,
        descriptor_pool,
        message_factory,
        wrappers_pb2,
    )

    proto = descriptor_pb2.FileDescriptorProto(
        name="vdsr_batching_test.proto",
        package="vdsr_test",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = proto.message_type.add(name="BatchingParameters")
    wrapped = [
        ("max_batch_size", ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", ".google.protobuf.Int64Value"),
        ("num_batch_threads", ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", ".google.protobuf.Int64Value"),
    ]
    F = descriptor_pb2.FieldDescriptorProto
    for number, (name, type_name) in enumerate(wrapped, 1):
        message.field.add(
            name=name,
            number=number,
            type=F.TYPE_MESSAGE,
            type_name=type_name,
            label=F.LABEL_OPTIONAL,
        )
    message.field.add(
        name="allowed_batch_sizes", number=6, type=F.TYPE_INT64, label=F.LABEL_REPEATED
    )
    message.field.add(
        name="pad_variable_length_inputs", number=7, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("vdsr_test.BatchingParameters")
    )


def test_serving_config_files_parse():
    """models.config as TF Serving's ModelServerConfig; batching.config as
    BatchingParameters, without padding (it would change the border pixels)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    folder = os.path.join(REPO, "export", "serving")
    config = text_format.Parse(
        open(os.path.join(folder, "models.config")).read(),
        model_server_config_pb2.ModelServerConfig(),
    )
    assert [m.name for m in config.model_config_list.config] == ["vdsr"]
    batching = text_format.Parse(
        open(os.path.join(folder, "batching.config")).read(), _batching_parameters_class()()
    )
    assert batching.max_batch_size.value >= 2 and not batching.pad_variable_length_inputs
    assert "batching.config" in open(os.path.join(folder, "docker-compose.yml")).read()
