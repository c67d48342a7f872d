"""The Gradio page of ``vdsr-app`` (``pip install "vdsr-tf[app]"``).

One page: drop or choose images; pick the scale (x2, x3, x4, another factor
or an exact size), the ensemble, the precision and the download's format;
each result is shown against bicubic with a before/after slider (mouse
wheel to zoom, drag to pan, pixels drawn as squares), and downloaded as
``vdsr-upscale`` writes it (``Jobs.run``). Requests queue: at most
``concurrency`` run at once, at most ``queue_size`` wait, others are told
the queue is full. A bad file gets one line in the page; the server goes on.

``build`` makes the page, ``launch`` serves it. Gradio reads its upload
folder from the environment, so ``build`` points ``GRADIO_TEMP_DIR`` at the
``Jobs`` folder: one page per process.
"""

import os

from vdsr_tf.app.jobs import EXTENSIONS, one_line
from vdsr_tf.io.images import IMAGE_EXTENSIONS, sample_images_dir
from vdsr_tf.ops.tiling import check_scale_size

PRECISION_LABELS = {
    "auto": "auto: the fastest path within 0.05 dB of fp32",
    "fp32": "fp32: exact",
    "int8": "int8 (LiteRT)",
    "bf16": "bf16",
}
SCALES = [("×2", "2"), ("×3", "3"), ("×4", "4"), ("other factor", "factor"), ("exact size", "size")]
FORMAT_CHOICES = [("as the input", "input")] + [(ext, ext) for ext in EXTENSIONS.values()]
# Pixels stay square when the comparison is zoomed in (the browser's default smooths them).
CSS = "#vdsr-slider img { image-rendering: pixelated; }"
EXAMPLES = [("X3", "butterfly.png", "3"), ("X2", "bird.png", "2"), ("X4", "butterfly.png", "4")]


def request(mode, factor=None, width=None, height=None):
    """``(scale, size)`` of the page's scale controls; size is (H, W).

    Raises:
        ValueError: a missing or invalid factor or size.
    """
    if mode in ("2", "3", "4"):
        return float(mode), None
    if mode == "factor":
        if factor is None:  # an empty field
            raise ValueError("give the factor (a number > 1)")
        check_scale_size(factor, None, names=("the factor", "the size"))  # > 1, finite
        return float(factor), None
    if mode == "size":
        if not width or not height or width < 1 or height < 1:
            raise ValueError("give the output's width and height in pixels")
        return None, (int(height), int(width))
    raise ValueError(f"unknown scale choice {mode!r}")


def _html(text):
    """``text`` (a file name, an error) safe in the page's HTML: no tag can
    start. ``>`` and quotes, harmless there, stay as they are."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def build(jobs, examples=True, precision="auto"):
    """The page (a ``gr.Blocks``) around ``jobs``; ``precision`` is the
    default choice. Its API: ``/upscale`` (files, mode, factor, width,
    height, precision, ensemble, fmt) -> ((bicubic, result) of the first
    file, the "compare" choices, the downloads, the result text)."""
    os.environ["GRADIO_TEMP_DIR"] = jobs.folder  # uploads land in the Jobs folder
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def fail(message):
        return gr.Error(_html(message), print_exception=False)

    def upscale(
        files, mode, factor, width, height, precision, ensemble, fmt, progress=gr.Progress()
    ):
        if not files:
            raise fail("drop or choose an image first")
        try:
            scale, size = request(mode, factor, width, height)
        except ValueError as e:
            raise fail(str(e)) from None
        done, failed = [], []
        for i, path in enumerate(files):
            name = os.path.basename(path)
            where = f"{name} ({i + 1}/{len(files)})" if len(files) > 1 else name

            def tiles(n, total, where=where):
                progress((n, total), desc=f"{where}: tiles", unit="tiles")

            try:
                done.append(
                    jobs.run(
                        path,
                        name,
                        scale,
                        size,
                        ensemble,
                        precision,
                        None if fmt == "input" else fmt,
                        tiles,
                    )
                )
            except (ValueError, OSError) as e:
                failed.append(f"{name}: {one_line(e)}")
        if not done:
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise fail(failed[0] + more)
        lines = [
            f"**{_html(r.name)}**: {r.input_size[0]}×{r.input_size[1]} → "
            f"{r.output_size[0]}×{r.output_size[1]}"
            + (f", {r.frames} frames" if r.frames > 1 else "")
            + f", {r.seconds:.1f} s"
            + "".join(f"; {_html(note)}" for note in r.notes)
            for r in done
        ]
        lines += [f"**failed**: {_html(line)}" for line in failed]
        lines.append(f"network: {_html(jobs.upscaler(precision).describe())}")
        shown = [(r.before, r.after) for r in done]
        return (
            shown[0],
            gr.update(
                choices=[(r.name, i) for i, r in enumerate(done)], value=0, visible=len(done) > 1
            ),
            [r.output for r in done],
            "\n\n".join(lines),
            shown,
        )

    def compare(index, shown):  # by position: two uploads may have one name
        return shown[index] if shown and index is not None and index < len(shown) else None

    def show_fields(mode):
        return gr.update(visible=mode == "factor"), gr.update(visible=mode == "size")

    with gr.Blocks(
        title="vdsr-tf", analytics_enabled=False, delete_cache=(600, jobs.keep_s)
    ) as page:
        gr.Markdown(
            "## vdsr-tf: super-resolution (VDSR)\n"
            "Drop photos, pick a scale, compare with bicubic (drag the slider; "
            "the mouse wheel zooms), download. Runs on this machine; nothing is uploaded elsewhere."
        )
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(
                    label="Images",
                    file_count="multiple",
                    file_types=list(IMAGE_EXTENSIONS),
                    elem_id="vdsr-inputs",
                )
                mode = gr.Radio(SCALES, value="2", label="Scale", elem_id="vdsr-scale")
                factor = gr.Number(2.5, label="Factor (> 1)", visible=False, elem_id="vdsr-factor")
                with gr.Row(visible=False) as exact:
                    width = gr.Number(None, label="Width", precision=0, minimum=1)
                    height = gr.Number(None, label="Height", precision=0, minimum=1)
                chosen = gr.Radio(
                    [(PRECISION_LABELS.get(p, p), p) for p in jobs.precisions],
                    value=precision,
                    label="Precision",
                    elem_id="vdsr-precision",
                )
                ensemble = gr.Checkbox(
                    False, label="Ensemble: average the 8 flips and rotations (8× slower)"
                )
                fmt = gr.Dropdown(FORMAT_CHOICES, value="input", label="Download format")
                go = gr.Button("Upscale", variant="primary", elem_id="vdsr-go")
                if examples:
                    root = os.path.join(sample_images_dir(), "LR_bicubic")
                    gr.Examples(
                        [[[os.path.join(root, x, name)], scale] for x, name, scale in EXAMPLES],
                        inputs=[files, mode],
                        label="Bundled samples",
                        example_labels=[f"{name} ×{scale}" for _, name, scale in EXAMPLES],
                    )
            with gr.Column(scale=2):
                slider = gr.ImageSlider(
                    label="bicubic | VDSR",
                    type="filepath",
                    interactive=False,
                    elem_id="vdsr-slider",
                    max_height=640,
                )
                pick = gr.Dropdown(label="Compare", visible=False, elem_id="vdsr-compare")
                downloads = gr.File(
                    label="Download",
                    file_count="multiple",
                    interactive=False,
                    elem_id="vdsr-downloads",
                )
                status = gr.Markdown(label="Result", elem_id="vdsr-status")
        shown = gr.State([])
        mode.change(show_fields, mode, [factor, exact], queue=False, api_name=False)
        go.click(
            upscale,
            [files, mode, factor, width, height, chosen, ensemble, fmt],
            [slider, pick, downloads, status, shown],
            api_name="upscale",
        )
        pick.change(compare, [pick, shown], slider, queue=False, api_name=False)
    return page


def launch(
    jobs,
    host="127.0.0.1",
    port=None,
    share=False,
    examples=True,
    precision="auto",
    concurrency=1,
    queue_size=16,
    max_file_size="100mb",
    open_browser=False,
    quiet=True,
):
    """Builds the page and serves it in background threads; returns it
    (``page.local_url``; ``page.close()`` stops it).

    Args:
        concurrency: requests upscaled at once (each holds an image's
            working memory; one already runs on every core).
        queue_size: requests that may wait; more are refused ("queue is full").
        max_file_size: the largest upload ("100mb", or bytes).
        quiet: hide Gradio's own start-up lines.
    """
    import gradio as gr

    page = build(jobs, examples, precision)
    page.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    page.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=True,
        quiet=quiet,
        max_file_size=max_file_size,
        inbrowser=open_browser,
        theme=gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"],
            font_mono=["ui-monospace", "monospace"],
        ),  # system fonts: the page asks nothing of other servers
        css=CSS,
    )
    return page
