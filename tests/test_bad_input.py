"""Bad input: each mistake gives one `framepred: error:` line naming the key,
file or value, exit status 2, no traceback, and no change to an earlier run's files.

The cases run through the real entry points (`main()` of framepred.train / evaluate /
predict, with sys.argv as the shell gives it). To pay TensorFlow's import once rather
than per case, one subprocess imports them and forks a child per case; each case is
still its own test (a `pytest.param` with an id), so a failure names the case.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from framepred.data.normalize import DataStatistics
from tests.helpers.cli import FAST_FLOW, error_lines, run_in_one_process
from tests.helpers.files import snapshot
from tests.helpers.run_if import run_if, unmet

# Each case: the command, its arguments and the substrings its one error line must
# hold. In the arguments, {tmp} is the cases' folder, {afile} a plain file there, {run}
# a fresh run folder of the case's own, {finished} a finished run restarted by mistake
# in its folder, {best} a trained checkpoint, {notes} a text file, {fake} a text file
# named .keras, {short} a 2-frame clip, {readonly} an existing folder nobody may write
# in (as root, where permissions do not bind, /sys/kernel), {rates} an array of rain
# rates in mm/h, {mismatch} a checkpoint whose normalization.json is for 2 channels,
# {radar} an HDF5 file with a dataset "rate", {map} a netCDF file without time.
TRAIN = "framepred.train"
WEATHER = run_if(extra="weather")  # the cases on HDF5 and netCDF files
CASES = [
    pytest.param(TRAIN, ["loss=foo"], ["loss/foo", "blend", "ssim"], id="unknown-group-option"),
    pytest.param(TRAIN, ["trainer.epoch=3"], ["trainer.epoch", "epoch"], id="misspelled-key"),
    # Hydra's own hint for the above is `+trainer.epoch=3`, which adds the key.
    pytest.param(TRAIN, ["+trainer.epoch=3"], ["trainer.epoch", "did you mean trainer.epochs?"],
                 id="misspelled-key-added-with-plus"),
    pytest.param(TRAIN, ["+epochs=3"], ["epochs is not a config key", "Keys of the config"],
                 id="unknown-top-level-key"),
    pytest.param(TRAIN, ["data=npy", "data.path=~/clip.npy"], ["$HOME/", "quote"],
                 id="tilde-unquoted"),
    pytest.param(TRAIN, ["data=npy", "data.path={rates}", "data.layout=bthw"],
                 ["outside [0, 1]", "data.normalize=minmax"], id="field-in-units-unnormalized"),
    pytest.param(TRAIN, ["data=hdf5", "data.path={radar}", "data.dataset=precip"],
                 ["no dataset 'precip'", "rate"], id="hdf5-missing-dataset", marks=WEATHER),
    pytest.param(TRAIN, ["data=netcdf", "data.path={map}", "data.variable=rain"],
                 ["no time dimension", "data.time_dim"], id="netcdf-without-time",
                 marks=WEATHER),
    pytest.param(TRAIN, ["data=hdf5", "data.path={radar}", "data.dataset=rate",
                         "data.channels=3"], ["data.channels=3", "data.channels=1"],
                 id="hdf5-other-channels", marks=WEATHER),
    pytest.param(TRAIN, ["hydra.run.dir={readonly}"],
                 ["{readonly} cannot be written", "hydra.run.dir="], id="output-not-writable"),
    pytest.param(TRAIN, ["trainer.epochs=abc"], ["trainer.epochs", "abc"], id="wrong-type"),
    pytest.param(TRAIN, ["trainer.distribution=data_parallel"],
                 ["trainer.distribution=data_parallel", "KERAS_BACKEND=jax", "mirrored"],
                 id="data-parallel-on-tensorflow"),
    pytest.param(TRAIN, ["trainer.num_processes=2"],
                 ["trainer.num_processes=2", "JAX backend"], id="processes-on-tensorflow"),
    pytest.param(TRAIN, ["model.head=motion", "model.motion_radius=0"],
                 ["model.motion_radius=0", "at least 1"], id="motion-radius-zero"),
    pytest.param(TRAIN, ["model.head=motion", "model.motion_radius=8"],
                 ["model.motion_radius=8", "half the frame", "at most 7"],
                 id="motion-radius-half-the-frame"),
    pytest.param(TRAIN, ["model.head=motion", "model.skip=false"],
                 ["model.head=motion", "model.skip=true"], id="motion-head-without-skip"),
    pytest.param(TRAIN, ["model.head=warp"], ["model.head", "warp", "residual", "motion"],
                 id="unknown-head"),
    pytest.param(TRAIN, ["loss=blend", "loss.alpha=-0.1"], ["loss.alpha=-0.1", "[0, 1]"],
                 id="alpha-negative"),
    pytest.param(TRAIN, ["loss=blend", "loss.alpha=1.5"], ["loss.alpha=1.5", "[0, 1]"],
                 id="alpha-above-one"),
    pytest.param(TRAIN, ["trainer.epochs=0"], ["trainer.epochs=0", ">= 1"], id="zero-epochs"),
    pytest.param(TRAIN, ["trainer.epochs=-2"], ["trainer.epochs=-2", ">= 1"],
                 id="negative-epochs"),
    pytest.param(TRAIN, ["trainer.batch_size=0"], ["trainer.batch_size=0", ">= 1"],
                 id="zero-batch"),
    pytest.param(TRAIN, ["trainer.batch_size=-4"], ["trainer.batch_size=-4", ">= 1"],
                 id="negative-batch"),
    pytest.param(TRAIN, ["data.frame_size=[10,10]", "data.digit_size=[4,6]"],
                 ["data.frame_size=[10, 10]", "loss.filter_size=11"],
                 id="frame-below-ssim-window"),
    pytest.param(TRAIN, ["loss=ms_ssim"], ["MS-SSIM", "data.frame_size=[16, 16]"],
                 id="ms-ssim-frames-too-small"),
    pytest.param(TRAIN, ["hydra.run.dir={afile}/run"], ["{afile}"], id="output-under-a-file"),
    pytest.param(TRAIN, ["hydra.run.dir=/proc/framepred-run"], ["/proc/framepred-run"],
                 id="output-in-proc"),
    pytest.param(TRAIN, ["data=npy", "data.frame_size=[16,16]"], ["data.path"],
                 id="npy-without-path"),
    pytest.param(TRAIN, ["data=npy", "data.frame_size=[16,16]", "data.path={tmp}/missing.npy"],
                 ["missing.npy"], id="npy-missing-file"),
    pytest.param(TRAIN, ["data=frames", "data.frame_size=[16,16]",
                         "data.path={tmp}/no-such-folder"], ["no-such-folder"],
                 id="frames-missing-folder"),
    pytest.param(TRAIN, ["trainer.epochs=0", "hydra.run.dir={finished}"], ["trainer.epochs=0"],
                 id="epochs-zero-in-finished-run"),
    pytest.param(TRAIN, ["model.filters=[8]", "hydra.run.dir={finished}"],
                 ["model.filters", "hydra.run.dir", "trainer.resume=false"],
                 id="other-model-in-finished-run"),
    pytest.param("framepred.evaluate", ["checkpoint={tmp}/missing.keras"],
                 ["missing.keras", "does not exist"], id="evaluate-missing-checkpoint"),
    pytest.param("framepred.evaluate", ["checkpoint={notes}"], ["notes.txt", ".keras"],
                 id="evaluate-not-keras"),
    pytest.param("framepred.evaluate", ["checkpoint={fake}"], ["fake.keras"],
                 id="evaluate-corrupt-keras"),
    pytest.param("framepred.evaluate", ["checkpoint={best}", "data.channels=3"],
                 ["channel", "3"], id="evaluate-other-channels"),
    pytest.param("framepred.evaluate", ["checkpoint={best}", "data.frame_size=[32,32]"],
                 ["frame"], id="evaluate-other-frame-size"),
    pytest.param("framepred.predict", ["checkpoint={tmp}/missing.keras",
                                       "input={tmp}/clip.npy", "output={tmp}/out.gif"],
                 ["missing.keras"], id="predict-missing-checkpoint"),
    pytest.param("framepred.predict", ["checkpoint={notes}", "input={tmp}/clip.npy",
                                       "output={tmp}/out.gif"], ["notes.txt"],
                 id="predict-not-keras"),
    pytest.param("framepred.evaluate", ["checkpoint={best}", "evaluate.thresholds=[2,1]"],
                 ["evaluate.thresholds", "increasing"], id="evaluate-thresholds-decreasing"),
    pytest.param("framepred.evaluate", ["checkpoint={best}", "evaluate.fss_scales=[4]"],
                 ["evaluate.fss_scales", "evaluate.thresholds"], id="evaluate-fss-no-threshold"),
    pytest.param("framepred.evaluate", ["checkpoint={mismatch}"],
                 ["2 channel(s)", "takes 1"], id="evaluate-normalization-other-channels"),
    pytest.param("framepred.evaluate", ["checkpoint={best}", "evaluate.splt=test"],
                 ["evaluate.splt"], id="evaluate-misspelled-key"),
    pytest.param("framepred.predict", ["checkpoint={best}", "input={short}",
                                       "output={tmp}/failed-out", "+predict.step=4"],
                 ["predict.step", "did you mean predict.steps?"],
                 id="predict-misspelled-key-added-with-plus"),
    pytest.param("framepred.predict", ["checkpoint={best}", "input={short}",
                                       "output={tmp}/failed-out"],
                 ["has 2 frame(s)", "give at least 3"], id="predict-clip-too-short"),
    pytest.param("framepred.predict", ["checkpoint={best}", "input={short}",
                                       "output={readonly}"],
                 ["{readonly} cannot be written", "output="], id="predict-output-not-writable"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, fast_run):
    """Runs every case once; {case id: (expected substrings, result)}, and the
    fingerprints of the earlier runs before and after."""
    tmp = tmp_path_factory.mktemp("bad-input")
    # A finished run restarted by mistake in its own folder. (fast_run trained
    # in-process, so it lacks the train.log a CLI run has; Hydra records each start
    # under .hydra/ before our code runs, which is its record, not the run's results.)
    finished = tmp / "finished"
    shutil.copytree(fast_run, finished)
    (finished / "train.log").write_text("")
    (tmp / "afile").write_text("not a folder")
    (tmp / "notes.txt").write_text("not a model")
    (tmp / "fake.keras").write_text("not a zip")
    np.save(tmp / "short.npy", np.zeros((2, 16, 16), np.uint8))
    np.save(tmp / "rates.npy", np.full((8, 6, 16, 16), 3.5, np.float32))  # mm/h
    mismatch = tmp / "mismatch.keras"
    shutil.copy(fast_run / "checkpoints" / "best.keras", mismatch)
    with zipfile.ZipFile(mismatch, "a") as archive:  # statistics of a 2-channel run
        archive.writestr("framepred/normalization.json", DataStatistics(
            "minmax", None, [0, 0], [9, 9], [1, 1], [2, 2]).to_json())
    readonly = Path("/sys/kernel") if os.geteuid() == 0 else tmp / "readonly"
    if not readonly.exists():
        readonly.mkdir()
        readonly.chmod(0o555)
    if unmet(extra="weather") is None:
        _write_fields(tmp)
    places = {"tmp": tmp, "radar": tmp / "radar.h5", "map": tmp / "map.nc",
              "afile": tmp / "afile", "finished": finished,
              "best": fast_run / "checkpoints" / "best.keras", "notes": tmp / "notes.txt",
              "fake": tmp / "fake.keras", "short": tmp / "short.npy", "readonly": readonly,
              "rates": tmp / "rates.npy", "mismatch": mismatch}
    # A finished run's log gains the error line of a start it refused (framepred.errors).
    kept = {".hydra", "train.log"}
    before = snapshot(fast_run), snapshot(finished, skip=kept)

    cases = {}
    for case in CASES:
        module, args, expect = case.values
        filled = {**places, "run": tmp / "runs" / case.id}
        args = [arg.format(**filled) for arg in args]
        if module == TRAIN:
            # A start in the finished run's folder keeps that run's model.
            args = [*(FAST_FLOW if "{finished}" in str(case.values[1]) else ["debug=fast"]),
                    *args]
            if not any(arg.startswith("hydra.run.dir") for arg in args):
                args.append(f"hydra.run.dir={filled['run']}")
        cases[case.id] = (module, args, [text.format(**filled) for text in expect])
    # Train apart from evaluate/predict: importing framepred.train installs its Hydra
    # error handler, which the other commands must not borrow here.
    results = {}
    for group, is_train in (("train", True), ("checkpoint", False)):
        ids = [i for i, (module, _, _) in cases.items() if (module == TRAIN) == is_train]
        done = run_in_one_process([{"module": cases[i][0], "args": cases[i][1]} for i in ids],
                         tmp / group)
        results.update(zip(ids, done))
    after = snapshot(fast_run), snapshot(finished, skip=kept)
    leftovers = [tmp / "failed-out"]
    return {i: (cases[i][2], results[i]) for i in cases}, before, after, leftovers


def _write_fields(tmp: Path) -> None:
    """radar.h5 (dataset "rate", [T, H, W] in mm/h) and map.nc (a variable without time)."""
    import h5py
    import xarray

    with h5py.File(tmp / "radar.h5", "w") as file:
        file.create_dataset("rate", data=np.ones((40, 16, 16), np.float32))
    xarray.Dataset({"rain": (("y", "x"), np.ones((16, 16), np.float32))}).to_netcdf(
        tmp / "map.nc", engine="h5netcdf")


def problems(result: dict, expect: list[str]) -> list[str]:
    """What is wrong with one case's outcome (empty when it passed)."""
    lines = error_lines(result["stderr"])
    found = []
    if result["rc"] != 2:  # README's exit-status table: 2 for a user's mistake
        found.append(f"exit status {result['rc']}")
    if "Traceback" in result["stderr"]:
        found.append("traceback")
    if len(lines) != 1 or not lines[0].startswith("framepred: error: "):
        found.append(f"not one `framepred: error:` line: {lines[:6]}")
    else:
        missing = [text for text in expect if text not in lines[0]]
        if missing:
            found.append(f"line lacks {missing}: {lines[0]}")
    return found


@pytest.mark.parametrize("module, args, expect", CASES)
def test_bad_input_gives_one_error_line(outcomes, request, module, args, expect):
    case_id = request.node.callspec.id
    expect, result = outcomes[0][case_id]
    assert problems(result, expect) == []


def test_bad_input_changes_no_earlier_run(outcomes):
    _, before, after, _ = outcomes
    assert after[0] == before[0], "an earlier run's files changed"
    assert after[1] == before[1], "a finished run's files changed when restarted with bad input"


def test_failed_predict_leaves_no_output_folder(outcomes):
    """Hydra starts predict's log in `output`; a predict that fails removes it again."""
    *_, leftovers = outcomes
    assert [path for path in leftovers if path.exists()] == []


def test_hydra_error_text_folds_onto_one_line():
    from framepred.errors import one_line

    text = ("In 'train': Could not find 'loss/foo'\n\nAvailable options in 'loss':\n"
            "\tblend\n\tmae\n\tssim\nConfig search path:\n\tprovider=hydra, path=pkg://x\n")
    assert one_line(text) == ("In 'train': Could not find 'loss/foo'; "
                              "Available options in 'loss': blend, mae, ssim")
    text = ("Could not override 'trainer.epoch'.\nKey 'epoch' not in 'TrainerConfig'\n"
            "    full_key: trainer.epoch\n    reference_type=TrainerConfig\n"
            "    object_type=TrainerConfig")
    assert one_line(text) == ("Could not override 'trainer.epoch'; Key 'epoch' not in "
                              "'TrainerConfig'; full_key: trainer.epoch")
