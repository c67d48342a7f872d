r"""vdsr-train: train VDSR with ``fit`` from a named preset plus overrides.

    vdsr-train --data=../shared/datasets/train/T91,../shared/datasets/train/BSD200 \
        --val_dir=../shared/datasets/Set5 --preset=paper --steps=2000 \
        --output_dir=runs/paper

Running the same command again resumes from ``output_dir``'s checkpoint.
"""

from absl import flags

from vdsr_tf import cli
from vdsr_tf import config as config_lib
from vdsr_tf.cli import CliError, entry_point
from vdsr_tf.cli import flags as shared
from vdsr_tf.io.presets import LOAD_ERRORS

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "data",
    None,
    "Training sources: image folders, packed .npz files (see --pack_to) or tfds:NAME[:SPLIT].",
)
flags.DEFINE_string("output_dir", None, "Run directory (config, checkpoint, logs, weights).")
flags.DEFINE_string("preset", "paper", "Named recipe: paper, modern or release.")
flags.DEFINE_string("val_dir", None, "Benchmark set scored each epoch (HR/ and LR_bicubic/X{s}/).")
flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory for tfds: sources.")
shared.define_deprecated_alias("data_dir", "tfds_data_dir")
flags.DEFINE_string(
    "manual_dir",
    None,
    "Local files (the ../shared/datasets layout) to prepare tfds: sources from on first use.",
)
flags.DEFINE_integer("steps", None, "Total training steps (the schedule spans them).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps between validations and checkpoints.")
flags.DEFINE_integer("batch_size", None, "Patches per step.")
flags.DEFINE_integer("patch_size", None, "Patch side in pixels.")
flags.DEFINE_list("scales", None, "Training scales, e.g. 2,3,4.")
flags.DEFINE_enum("optimizer", None, list(config_lib.OPTIMIZERS), "The optimizer.")
flags.DEFINE_enum(
    "loss",
    None,
    list(config_lib.LOSSES),
    "mse: Keras's per-pixel mean; "
    "patch_sum_mse: the paper's half sum over each patch (the clip binds).",
)
flags.DEFINE_float("learning_rate", None, "Peak learning rate.")
flags.DEFINE_float("clip_theta", None, "Adaptive clip theta (0 disables).")
flags.DEFINE_enum(
    "clip_mode",
    None,
    list(config_lib.CLIP_MODES),
    "value: every gradient value to "
    "[-theta/lr, theta/lr] (the paper); norm: the global gradient norm to theta/lr.",
)
flags.DEFINE_integer("depth", None, "Convolution layers.")
flags.DEFINE_integer("filters", None, "Hidden channels.")
flags.DEFINE_integer("seed", None, "Seed of initialisation and sampling.")
flags.DEFINE_enum(
    "mixed_precision", None, list(config_lib.MIXED_PRECISIONS), "Compute dtype policy."
)
flags.DEFINE_multi_string(
    "set",
    [],
    "Any config field by dotted name, e.g. --set=optim.warmup_fraction=0.05 (repeatable).",
)
flags.DEFINE_enum(
    "distribute",
    "none",
    list(config_lib.DISTRIBUTIONS),
    "Data-parallel training: data_parallel = tf.distribute.MirroredStrategy "
    "(TensorFlow) or keras.distribution.DataParallel (JAX) over all local "
    "devices; multi_worker = MultiWorkerMirroredStrategy (TF_CONFIG).",
)
flags.DEFINE_float(
    "time_budget_s", None, "Stop (resumably, weights written) before this many seconds pass."
)
flags.DEFINE_enum(
    "engine",
    "fit",
    list(config_lib.ENGINES),
    "fit: model.fit on a tf.data (or numpy) "
    "stream, any backend. fast: KERAS_BACKEND=jax only; the data degraded once "
    "and kept on the accelerator, --steps_per_call train steps per jitted call.",
)
flags.DEFINE_integer("steps_per_call", 100, "Train steps per jitted call (--engine=fast).")
flags.DEFINE_integer(
    "pool_workers",
    None,
    "Processes that degrade the training images for --engine=fast (default: every core).",
)
flags.DEFINE_string(
    "init_from",
    None,
    "Start a new run from these weights (not a resume): a checkpoint.npz, or a "
    "preset or weights handle (bundled, a preset folder, a .weights.h5 or .keras "
    "file, hf://owner/name, kaggle://...).",
)
flags.DEFINE_string("pack_to", None, "Instead of training, pack --data's Y planes into this .npz.")
flags.DEFINE_boolean("print_config", False, "Print the resolved config as JSON and exit.")

_FLAG_FIELDS = {
    "steps": "steps",
    "steps_per_epoch": "steps_per_epoch",
    "batch_size": "data.batch_size",
    "patch_size": "data.patch_size",
    "scales": "data.scales",
    "optimizer": "optim.optimizer",
    "loss": "optim.loss",
    "learning_rate": "optim.learning_rate",
    "clip_theta": "model.clip_theta",
    "clip_mode": "model.clip_mode",
    "depth": "model.depth",
    "filters": "model.filters",
    "seed": "seed",
    "mixed_precision": "mixed_precision",
}


def resolve_config(flag_values):
    """The TrainConfig named by the flags: preset, then flags, then --set."""

    cfg = config_lib.get_preset(flag_values.preset)
    updates = {
        field: flag_values[name].value
        for name, field in _FLAG_FIELDS.items()
        if flag_values[name].value is not None
    }
    for item in flag_values.set:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        updates[key.strip()] = value.strip()
    return config_lib.override(cfg, **updates)


@entry_point("vdsr-train")
def main(argv):
    shared.warn_deprecated("vdsr-train")
    if len(argv) > 1:
        raise CliError(f"Unexpected arguments: {argv[1:]}")
    try:
        cfg = resolve_config(FLAGS)
    except ValueError as e:
        raise CliError(str(e)) from None
    if FLAGS.print_config:
        print(config_lib.to_json(cfg))
        return 0
    if not FLAGS.data:
        raise CliError("--data is required")
    if FLAGS.pack_to:
        from vdsr_tf.data.degradation import pack_y_planes

        n = pack_y_planes(FLAGS.data, FLAGS.pack_to)
        print(f"Packed {n} Y planes into {FLAGS.pack_to}")
        return 0
    if not FLAGS.output_dir:
        raise CliError("--output_dir is required")
    from vdsr_tf.training.trainer import train

    try:
        train(
            cfg,
            FLAGS.data,
            FLAGS.output_dir,
            val_dir=FLAGS.val_dir,
            data_dir=FLAGS.tfds_data_dir,
            time_budget_s=FLAGS.time_budget_s,
            manual_dir=FLAGS.manual_dir,
            distribute=FLAGS.distribute,
            engine=FLAGS.engine,
            steps_per_call=FLAGS.steps_per_call,
            init_from=FLAGS.init_from,
            pool_workers=FLAGS.pool_workers,
        )
    except LOAD_ERRORS as e:
        raise CliError(str(e))
    return 0


def run():
    cli.run(main, "vdsr-train", __name__, __doc__)


if __name__ == "__main__":
    run()
