"""Config schemas: the one definition of every key a run accepts.

The dataclasses below are registered in Hydra's ConfigStore as `train_schema`,
`evaluate_schema`, `predict_schema` and `preview_schema`; each primary YAML in
`configs/` lists its schema first in its defaults, so a misspelled key or a
value of the wrong type fails in Hydra's composition, before any work starts.
`validate()` adds the checks a type cannot express (ranges, the SSIM window
against the frame size) and raises `FramepredError` naming the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, make_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional, get_type_hints

from framepred import extrapolation, losses, nowcasts, scoreboard, ssim
from framepred.data.registry import SOURCES, check_source
from framepred.errors import FramepredError
from framepred.models import sampling as scheduled_sampling

# OmegaConf's marker of a required value (omegaconf.MISSING), spelled out so that this
# module imports without OmegaConf (a JAX machine with only the library's needs).
MISSING = "???"


class Choice(str, Enum):
    """A config option with a fixed set of values.

    Structured configs hand enum fields over as members (`Form.next_frame`). As a str
    that prints, formats and compares as its value, a member is the plain string
    everywhere below the schema, so no module has to unwrap it. Every member's name
    is its value (a test holds this), so OmegaConf's YAML, which writes names,
    writes the values too.
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def _missing_(cls, value: Any) -> Choice | None:
        # Hydra's command line and YAML read `trainer.verbose=0` as the int 0, which
        # OmegaConf looks up by value: the member that spells it. (OmegaConf refuses a
        # bool before asking, so no choice is spelled true or false.)
        if isinstance(value, int) and not isinstance(value, bool):
            return cls._value2member_map_.get(str(value))
        return None


def config_dir() -> str:
    """The folder holding the YAML configs: inside the installed package, or
    `configs/` at the top of a source checkout (editable installs included)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "configs", package.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FramepredError(
        f"config folder not found: looked for train.yaml in {package / 'configs'} "
        f"and {package.parent / 'configs'}; reinstall framepred"
    )


def _choices(name: str, values: str | Iterable[str]) -> type[Choice]:
    """A `Choice` enum whose members are `values` (or the space-separated words of it)."""
    values = values.split() if isinstance(values, str) else list(values)
    return Choice(name, [(value, value) for value in values], module=__name__)


Source = _choices("Source", SOURCES)  # framepred/data/registry.py
Interpolation = _choices("Interpolation", "nearest bilinear bicubic lanczos area")
OnBadFile = _choices("OnBadFile", "error skip")
Form = _choices("Form", "next_frame encoder_forecaster")
# No batch normalization: its training-time statistics pool every frame of the
# sequence, so frame t would be normalized with frames after it (a time leak).
NormLayer = _choices("NormLayer", "none layer group")
Activation = _choices("Activation", "sigmoid hard_sigmoid linear relu")
# How features become frames (framepred/models/heads.py): a residual on the latest
# frame, or the latest frame moved by a per-pixel motion (a separable softmax kernel,
# "motion", or a bilinear displacement field, "flow"), then corrected.
Head = _choices("Head", "residual motion flow")
# What the encoder-forecaster's forecaster reads at each step: nothing (Shi et al.
# 2015), or the frame it forecast one step earlier.
ForecasterInput = _choices("ForecasterInput", "zeros forecast")
# How the motion heads move a frame: each pixel gathers from where its content comes
# from (backward, semi-Lagrangian), or sends its content where it goes (forward,
# splatting; it keeps the frame's sum, so objects cannot shrink away).
Warp = _choices("Warp", "backward forward")
# The losses and a blend's terms are framepred.losses' own.
LossName = _choices("LossName", losses.LOSSES)
Structural = _choices("Structural", losses.STRUCTURAL)
Pixel = _choices("Pixel", losses.PIXEL)
Precision = _choices("Precision", "float32 mixed_float16 mixed_bfloat16")
# XLA (framepred.devices.resolve_jit): auto = on GPUs only (slower on CPUs, measured).
JitCompile = _choices("JitCompile", "auto always never")
# model.fit's verbosity; auto = the progress bar on a terminal (framepred.console).
Verbosity = _choices("Verbosity", "auto 0 1 2")
Distribution = _choices("Distribution", "none mirrored data_parallel")
Optimizer = _choices("Optimizer", "adam adamw")
# onecycle: Smith & Topin 2019, as OpenSTL's recipes.
Schedule = _choices("Schedule", "constant cosine onecycle")
# What a next_frame model reads at each training step: always the true frame
# (teacher_forcing), or, more and more often, its own forecast (models.SampleTrueFrames):
# scheduled (Bengio et al. 2015), reverse_scheduled (Wang et al. 2022, PredRNN-V2).
Sampling = _choices("Sampling", "teacher_forcing scheduled reverse_scheduled")
Split = _choices("Split", "train val test")
# How an npy array's axes are read (framepred.data.arrays): tbhw is Moving MNIST's
# mnist_test_seq.npy (time, sequences, H, W); auto tells 4 axes apart by the data.
Layout = _choices("Layout", "auto tbhw bthw bthwc")
# How fields in physical units are scaled for the model (statistics of the training
# split, stored in the run's normalization.json and undone for data-unit metrics).
Normalize = _choices("Normalize", "none minmax zscore log1p")
# A missing value (NaN or the file's fill value) in a window: stop, read it as 0, or
# leave the window out.
Missing = _choices("Missing", "error zero skip_window")
# The forecasts a model is scored against, named where they live: the scoreboard's,
# and with the weather extra framepred.extrapolation's and pysteps' own (nowcasts).
Baseline = _choices("Baseline", " ".join(
    [*scoreboard.BASELINES, *extrapolation.BASELINES, *nowcasts.BASELINES]))
# How a channel is drawn (framepred.visualize.COLORMAPS); auto: gray or RGB as read.
Colormap = _choices("Colormap", "auto gray radar viridis")


@dataclass
class DataConfig:
    source: Source = Source.moving_digits
    path: str | None = None  # file or folder, for sources read from disk
    val_path: str | None = None  # a separate validation set, instead of a split of `path`
    frame_size: list[int] = field(default_factory=lambda: [64, 64])  # [height, width]
    channels: int = 1  # 1 = gray, 3 = RGB
    context_frames: int = 10
    future_frames: int = 10
    seed: int = 0
    # Procedural sources (moving_digits, moving_mnist): sequences per split.
    train_sequences: int = 2000
    val_sequences: int = 200
    test_sequences: int = 200
    num_digits: int = 2
    digit_size: list[int] = field(default_factory=lambda: [18, 30])  # glyph height range, px
    speed: list[float] = field(default_factory=lambda: [2.5, 4.5])  # px per frame range
    # Sources read from disk.
    layout: Layout = Layout.auto  # npy axes
    stride: int | None = None  # between windows of one sequence; null = one window length
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    resize: bool = True
    interpolation: Interpolation = Interpolation.bilinear
    on_bad_file: OnBadFile = OnBadFile.error
    cache: str | None = None  # null | memory | a file path prefix
    shuffle_buffer: int = 512
    parallel_calls: int = -1  # windows read at once; -1 = the source's choice, else AUTOTUNE
    # Fields in physical units (hdf5, netcdf, rain_cells, float arrays outside [0, 1]).
    normalize: Normalize = Normalize.none
    clip: list[float] | None = None  # [lo, hi] in data units, applied before normalizing
    dataset: str | None = None  # hdf5: the dataset inside the file
    variable: str | None = None  # netcdf: the variable
    time_dim: str | None = None  # netcdf: the time dimension; null = inferred
    spatial_dims: list[str] | None = None  # netcdf: [y, x]; null = inferred
    # odim (framepred/data/odim.py): the ODIM quantity read (DBZH, RATE, ACRR, ...); the
    # dBZ of "no echo" (undetect); dBZ -> mm/h by Marshall-Palmer, Z = zr_a * R^zr_b.
    quantity: str | None = None
    dbz_floor: float = -30.0
    to_rain_rate: bool = False
    zr_a: float = 200.0
    zr_b: float = 1.6
    missing: Missing = Missing.error


@dataclass
class ModelConfig:
    # Causal ConvLSTM (Shi et al. 2015).
    #   encoder_forecaster: an encoder reads the context, its states start a forecaster.
    #   next_frame: predicts frame t+1 from frames <= t; the future is rolled out.
    form: Form = Form.encoder_forecaster
    filters: list[int] = field(default_factory=lambda: [32, 32])  # one ConvLSTM layer each
    kernel_size: list[int] = field(default_factory=lambda: [3, 3])  # per layer, square
    patch_size: int = 4  # space-to-depth per frame, as OpenSTL's ConvLSTM (patch_size=4)
    normalization: NormLayer = NormLayer.none
    output_activation: Activation = Activation.sigmoid
    # The head also sees the latest observed frame: the model starts from copying it.
    skip: bool = True
    # flow: the default since it beat residual and the softmax kernel at equal steps
    # (docs/recipes.md, "Forecasts that move the last frame").
    head: Head = Head.flow
    # The largest shift per frame, in pixels, that the motion and flow heads can make
    # (Moving Digits moves 2.5 to 4.5 px a frame).
    motion_radius: int = 5
    forecaster_input: ForecasterInput = ForecasterInput.forecast
    warp: Warp = Warp.backward


@dataclass
class LossConfig:
    name: LossName = LossName.ssim
    # The defaults are the loss functions' own (framepred.losses, framepred.ssim).
    alpha: float = losses.DEFAULT_ALPHA  # blend weight of the structural term
    structural: Structural = Structural[losses.DEFAULT_STRUCTURAL]
    pixel: Pixel = Pixel[losses.DEFAULT_PIXEL]
    max_val: float = ssim.DEFAULT_MAX_VAL
    filter_size: int = ssim.DEFAULT_FILTER_SIZE
    filter_sigma: float = ssim.DEFAULT_FILTER_SIGMA
    power_factors: list[float] = field(default_factory=lambda: list(ssim.DEFAULT_POWER_FACTORS))


@dataclass
class TrainerConfig:
    # Sized to visibly learn on 2 CPU cores in under 10 minutes: ~875 steps
    # (docs/recipes.md).
    epochs: int = 7
    batch_size: int = 16  # per replica
    # The peak of the one-cycle schedule below: with the flow head, one-cycle to 3e-3
    # beat a constant 1e-3 in the default run (mean validation SSIM 0.701 against
    # 0.693, docs/recipes.md, "The default run itself").
    learning_rate: float = 3e-3
    steps_per_epoch: int | None = None  # null = the whole training split
    validation_steps: int | None = None
    optimizer: Optimizer = Optimizer.adam
    weight_decay: float = 0.0  # adamw only
    clipnorm: float | None = 1.0
    schedule: Schedule = Schedule.onecycle  # Smith & Topin 2019, as OpenSTL's recipes
    warmup_fraction: float = 0.3  # onecycle: share of the steps rising to learning_rate
    seed: int = 42
    # Speed and devices (framepred/devices.py, docs/performance.md).
    precision: Precision = Precision.float32  # mixed_float16 is loss-scaled
    jit_compile: JitCompile = JitCompile.auto
    steps_per_execution: int = 1  # training steps per call into the compiled function
    # mirrored (TensorFlow): every local GPU; data_parallel (JAX): every device of
    # every process, keras.distribution.DataParallel.
    distribution: Distribution = Distribution.none
    virtual_cpu_devices: int = 0  # split the CPU into N logical devices (tests, no GPU)
    # Several processes (hosts) of one JAX job: null reads jax.distributed's
    # JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID; one process when unset.
    coordinator: str | None = None  # host:port of process 0
    num_processes: int | None = None
    process_id: int | None = None
    coordinator_timeout: int = 300  # seconds to wait for every process to connect
    profile_batch: list[int] | None = None  # [first, last] batch to profile
    resume: bool = True
    backup_every_steps: int | None = None  # also back up mid-epoch, every N steps
    forecast_images: int = 3  # validation sequences drawn in TensorBoard each epoch
    verbose: Verbosity = Verbosity.auto
    # What a next_frame model reads at each training step (models.true_frame_probabilities);
    # the forecast always reads its own frames. Schedules count optimizer steps, with
    # OpenSTL's defaults (framepred/models/sampling.py); a default run takes ~875 steps,
    # so scale them to the run.
    #   teacher_forcing: always the true frame.
    #   scheduled (Bengio et al. 2015): forecast steps read the truth with probability
    #     sampling_start_value - (step + 1) * sampling_changing_rate, 0 from sampling_stop_step.
    #   reverse_scheduled (PredRNN-V2, Wang et al. 2022): between reverse_sampling_steps,
    #     context steps read the truth 0.5 -> 1 (exponential, reverse_sampling_alpha) and
    #     forecast steps 0.5 -> 0 (linear).
    sampling: Sampling = Sampling.teacher_forcing
    sampling_start_value: float = scheduled_sampling.START_VALUE
    sampling_changing_rate: float = scheduled_sampling.CHANGING_RATE
    sampling_stop_step: int = scheduled_sampling.STOP_STEP
    reverse_sampling_steps: list[int] = field(
        default_factory=lambda: list(scheduled_sampling.REVERSE_STEPS))
    reverse_sampling_alpha: float = scheduled_sampling.REVERSE_ALPHA


@dataclass
class VisualizeConfig:
    """Pictures (TensorBoard grids, preview, predict's PNG and GIF) of frames with any
    channel count: one channel through a colormap; RGB stays RGB under `auto`."""

    channel: int = 0
    colormap: Colormap = Colormap.auto


@dataclass
class TrainSchema:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    visualize: VisualizeConfig = field(default_factory=VisualizeConfig)
    name: str = "framepred"


@dataclass
class EvaluateOptions:
    split: Split = Split.val
    batch_size: int = 16
    steps: int | None = None  # batches to evaluate; null = the whole split
    # Nowcasting verification, in data units: CSI, POD, FAR, ETS, HSS and frequency
    # bias at each threshold, FSS at each threshold and scale (pixels). Empty: none.
    thresholds: list[float] = field(default_factory=list)
    fss_scales: list[int] = field(default_factory=list)
    # The forecasts scored beside the model; `extrapolation` (optical flow +
    # semi-Lagrangian advection), `pysteps_extrapolation` and `sprog` (pysteps' S-PROG)
    # need the weather extra.
    baselines: list[Baseline] = field(
        default_factory=lambda: [Baseline.copy_last, Baseline.background, Baseline.blank])


# Every DataConfig key, optional and unset: `evaluate` starts from the run's saved
# data config and changes only the keys given (`data=<option>`, `data.<key>=...`),
# with the same key names and types as training. Generated, so it never drifts.
DataOverrides = make_dataclass(
    "DataOverrides",
    [(f.name, Optional[hint], field(default=None))  # noqa: UP045  (a runtime type)
     for f, hint in ((f, get_type_hints(DataConfig)[f.name]) for f in fields(DataConfig))],
)


@dataclass
class EvaluateSchema:
    checkpoint: str = MISSING
    # Unset keys come from the run's saved config next to the checkpoint.
    data: DataOverrides = field(default_factory=DataOverrides)
    evaluate: EvaluateOptions = field(default_factory=EvaluateOptions)


@dataclass
class PredictOptions:
    steps: int | None = None  # future frames to forecast; null = as trained
    fps: float = 5.0  # of the written GIF
    # The clip of a folder of sequence folders or a multi-sequence array (0-based);
    # null = every clip, each into its own output subfolder.
    sequence: int | None = None
    # The frame the context starts at (0-based); null = the last context_frames frames,
    # a forecast of what comes after the clip. Frames after the context are the truth.
    start: int | None = None


@dataclass
class PredictSchema:
    checkpoint: str = MISSING
    input: str = MISSING
    output: str = MISSING
    # Unset keys come from the run's saved config: clips are read as training read them
    # (frame size, channels, resize, interpolation; data.layout for arrays).
    data: DataOverrides = field(default_factory=DataOverrides)
    predict: PredictOptions = field(default_factory=PredictOptions)
    visualize: VisualizeConfig = field(default_factory=VisualizeConfig)


@dataclass
class PreviewOptions:
    windows: int = 4
    output: str | None = None  # null = the run folder


@dataclass
class PreviewSchema:
    data: DataConfig = field(default_factory=DataConfig)
    preview: PreviewOptions = field(default_factory=PreviewOptions)
    visualize: VisualizeConfig = field(default_factory=VisualizeConfig)


def register_schemas() -> None:
    """Registers the schemas with Hydra, so the primary YAMLs can list them first."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    store.store(name="evaluate_schema", node=EvaluateSchema)
    store.store(name="predict_schema", node=PredictSchema)
    store.store(name="preview_schema", node=PreviewSchema)
    from omegaconf import OmegaConf

    # hydra.output_subdir: only process 0 of a multi-process job writes .hydra/.
    OmegaConf.register_new_resolver("framepred_hydra_subdir", hydra_subdir, replace=True)
    # --help's list of groups (configs/hydra/help/framepred.yaml).
    OmegaConf.register_new_resolver("framepred_groups", command_groups, replace=True)


def command_groups(*, _root_: Any) -> str:
    """The config groups a command takes, with their options, for its `--help`: those
    of its own defaults list. (Hydra's own list is every folder of configs/, the groups
    of the other commands and the parts of a preset, such as debug/training, included.)"""
    choices = _root_.hydra.runtime.choices
    groups = sorted(g for g in choices if g != "hydra" and "/" not in g and "@" not in g)
    options = {group: sorted(p.stem for p in Path(config_dir(), group).glob("*.yaml"))
               for group in groups}
    lines = [f"{group}: {', '.join(names)}" for group, names in options.items()]
    return "\n".join(lines) or "(none: this command takes keys only, key=value)"


def hydra_subdir(process_id: Any = None) -> str | None:
    """`.hydra` for process 0 (or a one-process run), None (no folder) for the others."""
    if process_id is None:
        process_id = os.environ.get("JAX_PROCESS_ID") or 0
    return ".hydra" if int(process_id) == 0 else None


try:
    register_schemas()
except ImportError:
    # No Hydra (a JAX machine with only the library's needs): the schemas and choices
    # stay plain dataclasses and enums for what reads a saved run (framepred.run).
    pass


# --- checks a type cannot express --------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise FramepredError(message)


def validate_data(data: Any, key: str = "data") -> None:
    size = list(data.frame_size)
    _require(
        len(size) == 2 and all(s > 0 for s in size),
        f"{key}.frame_size={size} is not valid; give [height, width], two positive integers",
    )
    _require(data.channels >= 1, f"{key}.channels={data.channels} must be >= 1 (1 gray, 3 RGB, "
             "or any number of variables)")
    _require(data.context_frames >= 1, f"{key}.context_frames={data.context_frames} must be >= 1")
    _require(data.future_frames >= 1, f"{key}.future_frames={data.future_frames} must be >= 1")
    for split in ("train", "val", "test"):
        value = getattr(data, f"{split}_sequences")
        _require(value >= 1, f"{key}.{split}_sequences={value} must be >= 1")
    _require(data.num_digits >= 1, f"{key}.num_digits={data.num_digits} must be >= 1")
    _require(
        len(data.digit_size) == 2 and 4 <= data.digit_size[0] <= data.digit_size[1],
        f"{key}.digit_size={list(data.digit_size)} must be [smallest, largest] glyph height, "
        "with 4 <= smallest <= largest",
    )
    _require(
        len(data.speed) == 2 and 0 <= data.speed[0] <= data.speed[1],
        f"{key}.speed={list(data.speed)} must be [slowest, fastest] in px per frame, "
        "0 <= slowest <= fastest",
    )
    _require(data.stride is None or data.stride >= 1, f"{key}.stride={data.stride} must be >= 1")
    for name in ("val_fraction", "test_fraction"):
        value = getattr(data, name)
        _require(0.0 <= value < 1.0, f"{key}.{name}={value} must be in [0, 1)")
    _require(
        data.val_fraction + data.test_fraction < 1.0,
        f"{key}.val_fraction + {key}.test_fraction must leave sequences for training (< 1)",
    )
    if data.clip is not None:
        _require(len(data.clip) == 2 and data.clip[0] < data.clip[1],
                 f"{key}.clip={list(data.clip)} must be [lo, hi] with lo < hi, in data units")
    check_source(data, key)  # what data.source itself needs (framepred/data/registry.py)
    _require(data.shuffle_buffer >= 1, f"{key}.shuffle_buffer={data.shuffle_buffer} must be >= 1")
    _require(data.parallel_calls == -1 or data.parallel_calls >= 1,
             f"{key}.parallel_calls={data.parallel_calls} must be -1 (autotune) or >= 1")


def check_known_keys(cfg: Any, schema: type, prefix: str = "") -> None:
    """FramepredError for a key the schema lacks, with the closest real key.

    Hydra refuses `trainer.epoch=3` (the entry points give `unknown_key`'s message for
    that) but accepts `+trainer.epoch=3`: a run would train with the default `epochs`
    beside an unused `epoch`. Every key of the composed config must be the schema's."""
    from omegaconf import DictConfig

    hints = get_type_hints(schema)
    for key in cfg.keys() if isinstance(cfg, DictConfig) else ():
        if key == "hydra":
            continue
        if key not in hints:
            raise FramepredError(_not_a_key(str(key), schema, prefix))
        if hasattr(hints[key], "__dataclass_fields__"):
            check_known_keys(cfg[key], hints[key], f"{prefix}{key}.")


def unknown_key(schema: type, key: str) -> str | None:
    """The message for an override of `key` (dotted, `trainer.epoch`) where a part of
    it is no key of `schema`: it names the closest key first, then the keys there.
    None where every part is a key (or for Hydra's own `hydra.*`)."""
    prefix = ""
    for part in key.split("."):
        hints = get_type_hints(schema)
        if part not in hints:
            return None if key.startswith("hydra.") else _not_a_key(part, schema, prefix)
        if not hasattr(hints[part], "__dataclass_fields__"):
            return None
        schema, prefix = hints[part], f"{prefix}{part}."
    return None


def _not_a_key(key: str, schema: type, prefix: str) -> str:
    import difflib

    names = [f.name for f in fields(schema)]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {prefix}{close[0]}?" if close else ""
    return (f"{prefix}{key} is not a config key{hint} (framepred/config.py, "
            f"{schema.__name__}) Keys of {prefix.rstrip('.') or 'the config'}: "
            f"{', '.join(names)}")


# A value Hydra's override grammar reads back unquoted as itself (its primitives:
# letters, digits and `_/-+.@%:`; `=`, `,`, quotes, brackets, spaces and `$` are syntax).
_HYDRA_PLAIN = re.compile(r"[A-Za-z0-9_/+.@%:-]+")
# ... and what it would read as a number, a bool or null rather than as the text.
_HYDRA_TYPED = re.compile(r"[-+]?([0-9_.]+(e[-+]?[0-9]+)?|inf|nan)|true|false|null", re.I)


def pasteable(key: str, value: Any) -> str:
    """`key=value` as one shell word that Hydra reads back as `key` set to `value`: the
    value is quoted for Hydra where its grammar needs it, the word for the shell."""
    import shlex

    text = str(value)
    if not _HYDRA_PLAIN.fullmatch(text) or _HYDRA_TYPED.fullmatch(text):
        # Hydra's quoted string: a backslash escapes a quote, and backslashes before
        # a quote or at the end (https://hydra.cc/docs/advanced/override_grammar/basic/).
        text = "'" + re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2)
                                                                          else ""), text) + "'"
    return shlex.quote(f"{key}={text}")


def validate(cfg: Any) -> None:
    """Checks a composed training config; raises FramepredError naming the key."""
    check_known_keys(cfg, TrainSchema)
    data, model, loss, trainer = cfg.data, cfg.model, cfg.loss, cfg.trainer
    validate_data(data)
    validate_visualize(cfg.visualize, int(data.channels))
    _require(str(data.normalize) != "zscore" or str(model.output_activation) == "linear",
             "data.normalize=zscore gives values outside [0, 1], which the "
             f"model.output_activation={model.output_activation} head cannot forecast; set "
             "model.output_activation=linear (or data.normalize=minmax or log1p)")
    height, width = data.frame_size

    _require(model.filters and all(f >= 1 for f in model.filters),
             f"model.filters={list(model.filters)} must list at least one positive width")
    _require(
        len(model.kernel_size) == len(model.filters) and all(k >= 1 for k in model.kernel_size),
        f"model.kernel_size={list(model.kernel_size)} must give one positive size per layer "
        f"of model.filters={list(model.filters)}",
    )
    _require(model.patch_size >= 1, f"model.patch_size={model.patch_size} must be >= 1")
    _require(
        height % model.patch_size == 0 and width % model.patch_size == 0,
        f"data.frame_size={[height, width]} must be divisible by "
        f"model.patch_size={model.patch_size}",
    )

    _require(0.0 <= loss.alpha <= 1.0, f"loss.alpha={loss.alpha} must be in [0, 1]")
    _require(loss.max_val > 0, f"loss.max_val={loss.max_val} must be > 0")
    _require(loss.filter_size >= 1, f"loss.filter_size={loss.filter_size} must be >= 1")
    _require(loss.filter_sigma > 0, f"loss.filter_sigma={loss.filter_sigma} must be > 0")
    # The SSIM metrics are logged whatever the loss, so every run needs the window.
    _require(
        min(height, width) >= loss.filter_size,
        f"data.frame_size={[height, width]} is smaller than the SSIM window "
        f"loss.filter_size={loss.filter_size}; use frames of at least "
        f"{loss.filter_size}x{loss.filter_size} or a smaller loss.filter_size",
    )
    if model.head != Head.residual:
        _require(model.skip, f"model.head={model.head} moves the latest frame, which "
                 "model.skip=false hides from the head; set model.skip=true or "
                 "model.head=residual")
        _require(1 <= model.motion_radius < min(height, width) / 2,
                 f"model.motion_radius={model.motion_radius} must be at least 1 and smaller "
                 f"than half the frame (data.frame_size={[height, width]}): at most "
                 f"{(min(height, width) - 1) // 2} pixels")

    uses_ms_ssim = loss.name == LossName.ms_ssim or (
        loss.name == LossName.blend and loss.structural == Structural.ms_ssim
    )
    if uses_ms_ssim:
        scales = len(loss.power_factors)
        _require(scales >= 1, "loss.power_factors must list at least one weight (one per scale)")
        needed = ssim.ms_ssim_min_size(scales, loss.filter_size)
        _require(
            min(height, width) >= needed,
            f"MS-SSIM with {scales} scales (loss.power_factors) and loss.filter_size="
            f"{loss.filter_size} needs frames of at least {needed}x{needed}, but "
            f"data.frame_size={[height, width]}; use fewer power factors or larger frames",
        )

    _require(trainer.epochs >= 1, f"trainer.epochs={trainer.epochs} must be >= 1")
    _require(trainer.batch_size >= 1, f"trainer.batch_size={trainer.batch_size} must be >= 1")
    _require(trainer.learning_rate > 0,
             f"trainer.learning_rate={trainer.learning_rate} must be > 0")
    _require(0 < trainer.warmup_fraction < 1,
             f"trainer.warmup_fraction={trainer.warmup_fraction} must lie in (0, 1)")
    for name in ("steps_per_epoch", "validation_steps", "backup_every_steps"):
        value = getattr(trainer, name)
        _require(value is None or value >= 1, f"trainer.{name}={value} must be >= 1 or null")
    _require(trainer.steps_per_execution >= 1,
             f"trainer.steps_per_execution={trainer.steps_per_execution} must be >= 1")
    _require(trainer.virtual_cpu_devices >= 0,
             f"trainer.virtual_cpu_devices={trainer.virtual_cpu_devices} must be >= 0")
    validate_processes(trainer)
    if trainer.profile_batch is not None:
        batches = list(trainer.profile_batch)
        _require(
            len(batches) == 2 and 1 <= batches[0] <= batches[1],
            f"trainer.profile_batch={batches} must be [first, last] with 1 <= first <= last",
        )
    _require(trainer.forecast_images >= 0,
             f"trainer.forecast_images={trainer.forecast_images} must be >= 0")
    validate_sampling(trainer, model.form)


def validate_processes(trainer: Any) -> None:
    """The distribution against the backend, and a multi-process job's keys."""
    import keras

    backend = keras.backend.backend()
    distribution = str(trainer.distribution)
    _require(distribution != "data_parallel" or backend == "jax",
             f"trainer.distribution=data_parallel needs the JAX backend (KERAS_BACKEND=jax), "
             f"not {backend}; on TensorFlow use trainer.distribution=mirrored")
    _require(distribution != "mirrored" or backend == "tensorflow",
             f"trainer.distribution=mirrored is TensorFlow's; on the {backend} backend use "
             "trainer.distribution=data_parallel")
    processes, process = trainer.num_processes, trainer.process_id
    _require(processes is None or processes >= 1,
             f"trainer.num_processes={processes} must be >= 1 or null")
    _require(processes in (None, 1) or backend == "jax",
             f"trainer.num_processes={processes}: several processes need the JAX backend "
             "(KERAS_BACKEND=jax) and trainer.distribution=data_parallel; Keras 3 on "
             "TensorFlow trains on one host (keras-team/keras#20585)")
    _require(process is None or process >= 0,
             f"trainer.process_id={process} must be >= 0 or null")
    # process_id < num_processes: devices.process_identity, which also reads jax's
    # environment variables.
    _require(trainer.coordinator_timeout >= 1,
             f"trainer.coordinator_timeout={trainer.coordinator_timeout} must be >= 1 second")


def validate_sampling(trainer: Any, form: str) -> None:
    sampling = trainer.sampling
    _require(
        sampling == "teacher_forcing" or form == "next_frame",
        f"trainer.sampling={sampling} feeds a model its own forecasts, which only "
        f"model.form=next_frame reads; give model.form=next_frame or "
        f"trainer.sampling=teacher_forcing (model.form={form})",
    )
    _require(0.0 <= trainer.sampling_start_value <= 1.0,
             f"trainer.sampling_start_value={trainer.sampling_start_value} must be in [0, 1]")
    _require(trainer.sampling_changing_rate >= 0,
             f"trainer.sampling_changing_rate={trainer.sampling_changing_rate} must be >= 0")
    _require(trainer.sampling_stop_step >= 1,
             f"trainer.sampling_stop_step={trainer.sampling_stop_step} must be >= 1")
    steps = list(trainer.reverse_sampling_steps)
    _require(
        len(steps) == 2 and 0 <= steps[0] < steps[1],
        f"trainer.reverse_sampling_steps={steps} must be [start, end] optimizer steps of "
        "the change, with 0 <= start < end",
    )
    _require(trainer.reverse_sampling_alpha > 0,
             f"trainer.reverse_sampling_alpha={trainer.reverse_sampling_alpha} must be > 0")


def require_keys(cfg: Any, keys: tuple[str, ...], example: str) -> None:
    """FramepredError naming the first of `keys` left unset (Hydra's `???`)."""
    from omegaconf import OmegaConf

    for key in keys:
        if OmegaConf.is_missing(cfg, key):
            raise FramepredError(f"{key} is not set; give {key}=..., e.g. {example}")


def validate_evaluate(cfg: Any) -> None:
    """Checks evaluate's own keys; the data keys are checked once merged with the run's."""
    check_known_keys(cfg, EvaluateSchema)
    require_keys(cfg, ("checkpoint",), "checkpoint=<run>/checkpoints/best.keras")
    batch_size, steps = int(cfg.evaluate.batch_size), cfg.evaluate.steps
    _require(batch_size >= 1, f"evaluate.batch_size={batch_size} must be >= 1")
    _require(steps is None or steps >= 1,
             f"evaluate.steps={steps} must be >= 1 or null (the whole split)")
    options = cfg.evaluate
    from framepred import skill  # NumPy only: the scores' own rules

    skill.validate_thresholds(options.thresholds)
    skill.validate_fss_scales(options.fss_scales, options.thresholds)
    _require(len(options.baselines) >= 1 and len(set(options.baselines)) == len(
        options.baselines), f"evaluate.baselines={list(options.baselines)} must name each "
             "baseline once, at least one")


def validate_predict(cfg: Any) -> None:
    """Checks predict's keys before the checkpoint is read."""
    check_known_keys(cfg, PredictSchema)
    require_keys(cfg, ("checkpoint", "input", "output"),
                 "checkpoint=<run>/checkpoints/best.keras input=clip.gif output=out/")
    steps, sequence, start = cfg.predict.steps, cfg.predict.sequence, cfg.predict.start
    _require(sequence is None or sequence >= 0,
             f"predict.sequence={sequence} must be >= 0 (the first clip is 0), or null (all)")
    _require(start is None or start >= 0,
             f"predict.start={start} must be >= 0, or null (the last context frames)")
    _require(steps is None or int(steps) >= 1,
             f"predict.steps={steps} must be >= 1 (or null: as many as the run was trained "
             "to forecast)")
    _require(float(cfg.predict.fps) > 0, f"predict.fps={cfg.predict.fps} must be > 0")


def validate_preview(cfg: Any) -> None:
    """Checks preview's keys and its data config."""
    check_known_keys(cfg, PreviewSchema)
    validate_data(cfg.data)
    validate_visualize(cfg.visualize, int(cfg.data.channels))
    _require(cfg.preview.windows >= 1, f"preview.windows={cfg.preview.windows} must be >= 1")


def validate_visualize(options: Any, channels: int) -> None:
    """visualize.channel must name one of the frames' channels."""
    _require(0 <= options.channel < channels,
             f"visualize.channel={options.channel} must be below data.channels={channels}")
