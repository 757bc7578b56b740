"""A new user's loop on their own clip, through the real commands.

README's "Your own footage: the whole loop" is run line by line, exactly as written,
in a folder whose name has a space, on a clip of 40 RGB frames of 40x48 pixels:
preview -> train -> evaluate -> predict on the same clip -> forecast past its end.
Then what a user tries next: evaluate on an array of the same clip (`data=npy`),
predict with a checkpoint copied out of its run on a gray multi-sequence array given
as `"~/..."`, predict on a folder of sequence folders, and `train.sh` from their own
folder.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.helpers.cli import REPO, run_cli, run_in_one_process
from tests.helpers.files import write_frames

FRAMES, HEIGHT, WIDTH = 40, 40, 48  # the user's clip; the run trains at 16x16
CONTEXT, FUTURE, SIZE = 3, 3, 16  # debug=fast


def readme_loop() -> list[list[str]]:
    """The commands of README's loop block, split as the shell splits them."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- the loop:.*?```bash\n(.*?)```", text, re.S)
    assert block, "README lost its loop block"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def moving_square(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3]: a coloured square crossing a dark background."""
    rng = np.random.default_rng(seed)
    clip = np.full((frames, height, width, 3), 20, np.uint8)
    colour = rng.integers(120, 256, 3)
    for t in range(frames):
        top, left = (2 + t) % (height - 12), (3 + 2 * t) % (width - 12)
        clip[t, top:top + 12, left:left + 12] = colour
    return clip


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Runs README's loop, then the follow-ups; {name: finished process} and the folder."""
    work = tmp_path_factory.mktemp("footage") / "my work"  # a space, as users' folders have
    work.mkdir()
    clip = moving_square(FRAMES, HEIGHT, WIDTH)
    write_frames(work / "my_clip", clip)
    np.save(work / "my_clip.npy", clip[None])  # [1, T, H, W, 3]: one sequence, bthwc
    gray = np.stack([moving_square(FRAMES, HEIGHT, WIDTH, seed).mean(-1).astype(np.uint8)
                     for seed in (1, 2)])  # [2, T, H, W]
    np.save(work / "gray.npy", gray)
    for name, seed in (("walk", 3), ("run", 4)):
        write_frames(work / "clips" / name, moving_square(8, HEIGHT, WIDTH, seed))

    # Preview and train as the shell runs them, each in a fresh interpreter (train's
    # stderr must stay empty from its first import on); the loop's commands after
    # train, with the follow-ups, in one interpreter: one import, a forked child each.
    done, after_train = {}, {}
    for command in readme_loop():
        assert command[:2] == ["python", "-m"], command
        name = command[2].rpartition(".")[2]
        name = f"{name}_{len([k for k in [*done, *after_train] if k.startswith(name)])}"
        if "train_0" in done:
            after_train[name] = (command[2], command[3:], {})
            continue
        done[name] = run_cli(command[2], *command[3:], cwd=work)
        assert done[name].returncode == 0, (command, done[name].stderr[-3000:])
    assert list(done) == ["preview_0", "train_0"], list(done)

    (work / "elsewhere").mkdir()
    shutil.copy(work / "runs/my_clip/checkpoints/best.keras", work / "elsewhere/model.keras")
    follow_ups = {
        "evaluate_npy": ("framepred.evaluate", [
            "checkpoint=runs/my_clip/checkpoints/best.keras", "data=npy",
            "data.path=my_clip.npy", "hydra.run.dir=runs/my_clip/npy"], {}),
        "predict_gray": ("framepred.predict", [
            "checkpoint=elsewhere/model.keras", 'input="~/gray.npy"', "data.layout=bthw",
            "predict.sequence=1", "output=forecasts/gray"], {"HOME": str(work)}),
        "predict_folders": ("framepred.predict", [
            "checkpoint=runs/my_clip/checkpoints/best.keras", "input=clips",
            "output=forecasts/clips"], {}),
    }
    commands = {**after_train, **follow_ups}
    results = run_in_one_process(
        [{"module": module, "args": args, "env": env}
         for module, args, env in commands.values()], work / ".driver", cwd=work)
    for name, result in zip(commands, results):
        assert result["rc"] == 0, (name, result["stderr"][-3000:])
        done[name] = result
    return done, work


def test_preview_draws_the_windows_it_counts(session):
    done, work = session
    (folder,) = (work / "outputs" / "preview").iterdir()  # relative to the user's folder
    assert {p.name for p in folder.iterdir()} >= {"preview.png", "preview.gif"}
    assert "training windows" in done["preview_0"].stdout
    # Both splits train reads, as train's summary counts them (below).
    assert ("  splits:    train 1 sequence(s), 4 window(s); val 1 sequence(s), 1 window(s)"
            in done["preview_0"].stdout.splitlines())


def test_train_speaks_plainly_in_the_users_folder(session):
    done, work = session
    result = done["train_0"]
    assert (work / "runs/my_clip/checkpoints/best.keras").is_file()  # relative run dir
    # Quiet: no TensorFlow start-up lines, no Keras warning, no progress-bar redraws.
    assert result.stderr.strip() == ""
    assert "\x08" not in result.stdout and "\x1b[" not in result.stdout
    # The data summary: 40 frames split 24 | 8 | 8 in time, windows of 6 frames.
    assert "data: train split: 1 sequence(s), 4 window(s) of 6 frames" in result.stdout
    assert "data: val split: 1 sequence(s), 1 window(s)" in result.stdout
    # Every split's source cuts the one clip in time; the run says so once.
    assert result.stdout.count("1 sequence(s) for 3 splits") == 1
    assert "fewer than one global batch of 4" in result.stdout  # the val split
    assert "1 step(s), 4 window(s) x 3 target steps" in (work / "runs/my_clip/train.log"
                                                          ).read_text()
    # The end-of-run table: every line but the log's, Keras' one line per epoch and the
    # ready-to-paste commands after "next:" (paths, as long as the user's folders).
    lines = result.stdout.splitlines()
    table = [line for line in lines[:lines.index("next:")]
             if not re.match(r"\[|Epoch \d|\d+/\d+ - ", line)]
    assert "beats best baseline?" in "".join(table) and max(map(len, table)) <= 100
    assert (work / "runs/my_clip/metrics.csv").is_file()
    logdir = shlex.quote(str(work / "runs"))
    assert f"tensorboard --logdir {logdir}" in result.stdout


def test_evaluate_reads_the_run_settings(session):
    done, work = session
    assert "beats best baseline?" in done["evaluate_0"]["stdout"]
    assert json.loads((work / "runs/my_clip/test/metrics.json").read_text())["split"] == "test"
    # data=npy on the clip's array keeps the run's frame size and context.
    npy = json.loads((work / "runs/my_clip/npy/metrics.json").read_text())
    assert npy["data"]["frame_size"] == [SIZE, SIZE] and npy["data"]["source"] == "npy"
    assert len(npy["model"]["ssim"]["per_step"]) == FUTURE


def test_predict_on_the_clip_resizes_as_training_did(session):
    _, work = session
    out = work / "forecasts/from_start"
    assert np.load(out / "forecast.npy").shape == (FUTURE, SIZE, SIZE, 3)
    with Image.open(out / "forecast.gif") as gif:
        scale = 128 // SIZE  # truth beside the forecast: predict.start=0 leaves truth
        assert gif.size == (2 * SIZE * scale + 2, SIZE * scale + 2)


def test_predict_forecasts_past_the_end_of_the_clip(session):
    done, work = session
    out = work / "forecasts/next"
    assert np.load(out / "forecast.npy").shape == (FUTURE, SIZE, SIZE, 3)
    assert f"context frames {FRAMES - CONTEXT}-{FRAMES - 1} of {FRAMES}" in done[
        "predict_1"]["stdout"] + (out / "predict.log").read_text()
    with Image.open(out / "forecast.gif") as gif:
        assert gif.size[0] == SIZE * (128 // SIZE)  # no truth after the end: one panel


def test_predict_with_a_copied_checkpoint_on_gray_arrays_and_folders(session):
    _, work = session
    # A gray array for an RGB model, sequence 1 of 2, from a checkpoint out of its run.
    assert np.load(work / "forecasts/gray/forecast.npy").shape == (FUTURE, SIZE, SIZE, 3)
    # A folder of sequence folders: one output folder per clip.
    for name in ("walk", "run"):
        assert np.load(work / "forecasts/clips" / name / "forecast.npy").shape == (
            FUTURE, SIZE, SIZE, 3)


def test_train_sh_runs_in_the_callers_folder(session):
    """./scripts/train.sh, Quickstart's first command: its arguments are Hydra overrides,
    and relative paths in them are the caller's."""
    _, work = session
    # A relative data.path that only the caller's folder holds, and that is no array:
    # found there (not "does not exist"), so read from there, then refused before any
    # folder is made, here or in the repository.
    (work / "not_an_array.npy").write_text("not an array")
    done = subprocess.run([str(REPO / "scripts" / "train.sh"), "debug=fast", "data=npy",
                           "data.path=not_an_array.npy", "hydra.run.dir=rel_run"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "cannot read not_an_array.npy as a NumPy array" in done.stderr
    assert not (work / "rel_run").exists() and not (REPO / "rel_run").exists()
