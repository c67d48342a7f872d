"""vdsr-train: train VDSR with ``fit`` from a named preset plus overrides.

    vdsr-train --data=../shared/datasets/train/T91,../shared/datasets/train/BSD200 \
        --val_dir=../shared/datasets/Set5 --preset=paper --steps=2000 \
        --output_dir=runs/paper

Running the same command again resumes from ``output_dir``'s checkpoint.
"""

from absl import app, flags

from vdsr_tf.cli import CliError, entry_point

FLAGS = flags.FLAGS
flags.DEFINE_list("data", None, "Training sources: image folders, packed .npz files "
                  "(see --pack_to) or tfds:NAME[:SPLIT].")
flags.DEFINE_string("output_dir", None, "Run directory (config, checkpoint, logs, weights).")
flags.DEFINE_string("preset", "paper", "Named recipe: paper or modern.")
flags.DEFINE_string("val_dir", None, "Benchmark set scored each epoch (HR/ and LR_bicubic/X{s}/).")
flags.DEFINE_string("data_dir", None, "TFDS data directory for tfds: sources.")
flags.DEFINE_string("manual_dir", None, "Local files (the ../shared/datasets layout) to prepare "
                    "tfds: sources from on first use.")
flags.DEFINE_integer("steps", None, "Total training steps (the schedule spans them).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps between validations and checkpoints.")
flags.DEFINE_integer("batch_size", None, "Patches per step.")
flags.DEFINE_integer("patch_size", None, "Patch side in pixels.")
flags.DEFINE_list("scales", None, "Training scales, e.g. 2,3,4.")
flags.DEFINE_string("optimizer", None, "sgd, adam or adamw.")
flags.DEFINE_float("learning_rate", None, "Peak learning rate.")
flags.DEFINE_float("clip_theta", None, "Adaptive clip theta (0 disables).")
flags.DEFINE_integer("depth", None, "Convolution layers.")
flags.DEFINE_integer("filters", None, "Hidden channels.")
flags.DEFINE_integer("seed", None, "Seed of initialisation and sampling.")
flags.DEFINE_enum("mixed_precision", None, ["float32", "mixed_bfloat16"], "Compute dtype policy.")
flags.DEFINE_multi_string("set", [], "Any config field by dotted name, e.g. "
                          "--set=optim.warmup_fraction=0.05 (repeatable).")
flags.DEFINE_enum("distribute", "none", ["none", "data_parallel", "multi_worker"],
                  "Data-parallel training: data_parallel = tf.distribute.MirroredStrategy "
                  "(TensorFlow) or keras.distribution.DataParallel (JAX) over all local "
                  "devices; multi_worker = MultiWorkerMirroredStrategy (TF_CONFIG).")
flags.DEFINE_float("time_budget_s", None, "Stop (resumably) before this many seconds pass.")
flags.DEFINE_string("pack_to", None, "Instead of training, pack --data's Y planes into this .npz.")
flags.DEFINE_boolean("print_config", False, "Print the resolved config as JSON and exit.")

_FLAG_FIELDS = {
    "steps": "steps", "steps_per_epoch": "steps_per_epoch", "batch_size": "data.batch_size",
    "patch_size": "data.patch_size", "scales": "data.scales", "optimizer": "optim.optimizer",
    "learning_rate": "optim.learning_rate", "clip_theta": "model.clip_theta",
    "depth": "model.depth", "filters": "model.filters", "seed": "seed",
    "mixed_precision": "mixed_precision",
}


def resolve_config(flag_values):
    """The TrainConfig named by the flags: preset, then flags, then --set."""
    from vdsr_tf import config as config_lib

    cfg = config_lib.get_preset(flag_values.preset)
    updates = {field: flag_values[name].value for name, field in _FLAG_FIELDS.items()
               if flag_values[name].value is not None}
    for item in flag_values.set:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        updates[key.strip()] = value.strip()
    return config_lib.override(cfg, **updates)


@entry_point("vdsr-train")
def main(argv):
    if len(argv) > 1:
        raise CliError(f"Unexpected arguments: {argv[1:]}")
    try:
        cfg = resolve_config(FLAGS)
    except ValueError as e:
        raise CliError(str(e)) from None
    if FLAGS.print_config:
        from vdsr_tf import config as config_lib

        print(config_lib.to_json(cfg))
        return 0
    if not FLAGS.data:
        raise CliError("--data is required")
    if FLAGS.pack_to:
        from vdsr_tf.data import pack_y_planes

        n = pack_y_planes(FLAGS.data, FLAGS.pack_to)
        print(f"Packed {n} Y planes into {FLAGS.pack_to}")
        return 0
    if not FLAGS.output_dir:
        raise CliError("--output_dir is required")
    from vdsr_tf.train import train

    try:
        train(cfg, FLAGS.data, FLAGS.output_dir, val_dir=FLAGS.val_dir,
              data_dir=FLAGS.data_dir, time_budget_s=FLAGS.time_budget_s,
              manual_dir=FLAGS.manual_dir, distribute=FLAGS.distribute)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e))
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
