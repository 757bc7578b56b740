"""What the commands print and leave behind, seen as a user sees it: the real entry
points with the shell's argv (three interpreters in all: `run_in_one_process` forks a
child per command after one import).

- a sweep's job folder is its number; its overrides are in overrides.txt and the log;
- the `next:` commands a run prints paste back into the shell (read with shlex, the
  shell's rules) and run, from a folder whose name holds a space, `=` and `,`;
- a misspelled key names the closest key first, not Hydra's `+key=` hint;
- each command's --help lists the groups it takes, no others;
- a failed command leaves no folder of its own; a run folder that was there keeps its
  files and its log gains the error line;
- predict without output= prints one line;
- evaluate says what it scores before its table, and the table is in evaluate.log;
- under KERAS_BACKEND=jax, TensorFlow's start-up lines (it is imported by Keras' seeding)
  do not reach the terminal.
"""

from __future__ import annotations

import shlex

import numpy as np
import pytest
from PIL import Image

from tests.helpers.cli import error_lines, run_in_one_process

TRAIN, EVALUATE, PREDICT, PREVIEW = (f"framepred.{c}" for c in
                                     ("train", "evaluate", "predict", "preview"))
ENTRIES = ("model", "copy_last", "background", "blank")
# A folder name that Hydra's grammar and the shell both read as syntax unless quoted.
ODD = "my runs,a=b"


def _case(module: str, *args: str) -> dict:
    return {"module": module, "args": list(args)}


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    """{name: {"rc", "stdout", "stderr"}} for every command below, and the folders."""
    tmp = tmp_path_factory.mktemp("cli-output")
    work = tmp / "work"  # the user's current folder: where outputs/ would appear
    work.mkdir()
    sweep = tmp / ODD
    missing = tmp / "missing.npy"
    first = {
        # Hydra's quotes keep `,` and `=` in the value; the job folder is sweep/0.
        "sweep": _case(TRAIN, "-m", "debug=fast", "loss=mse",
                       f"hydra.sweep.dir='{sweep}'"),
        "misspelled": _case(TRAIN, "debug=fast", "trainer.epoch=3"),
        "config-error": _case(TRAIN, "debug=fast", "trainer.epochs=0"),
        "data-error": _case(TRAIN, "debug=fast", "data=npy", f"data.path={missing}",
                            f"hydra.run.dir={tmp / 'fixed'}"),
        **{f"help-{c}": _case(f"framepred.{c}", "--help")
           for c in ("train", "evaluate", "predict", "preview")},
    }
    results = dict(zip(first, run_in_one_process(list(first.values()), tmp / "first",
                                                 cwd=work)))
    job = sweep / "0"
    assert results["sweep"]["rc"] == 0, results["sweep"]["stderr"][-3000:]

    # The printed commands, pasted: split as the shell splits them.
    printed = results["sweep"]["stdout"].splitlines()
    commands = [shlex.split(line) for line in printed[printed.index("next:") + 1:]
                if line.startswith("  python -m ")]
    np.save(tmp / "clip.npy", np.zeros((4, 16, 16), np.uint8))
    pasted = {}
    for words in commands:
        module, args = words[2], words[3:]
        # What a user may add to a pasted command.
        args += ([f"hydra.run.dir={tmp / 'evaluated'}", "evaluate.split=test"]
                 if module == EVALUATE else ["predict.steps=4"])
        pasted[module] = _case(module, *args)
    second = {
        "evaluate": pasted[EVALUATE],
        "predict": pasted[PREDICT],
        "predict-without-output": _case(PREDICT, f"checkpoint='{job}/checkpoints/best.keras'",
                                        f"input={tmp / 'clip.npy'}"),
        "evaluate-error": _case(EVALUATE, f"checkpoint={tmp / 'none.keras'}"),
        "preview-error": _case(PREVIEW, "data=npy", f"data.path={missing}"),
        # The sweep's job restarted in its folder with another model: refused after
        # the folder was read, so it stays, with the error in its log.
        "restart-error": _case(TRAIN, "debug=fast", "loss=mse", "model.filters=[8]",
                               f"hydra.run.dir='{job}'"),
    }
    results.update(zip(second, run_in_one_process(list(second.values()), tmp / "second",
                                                  cwd=work)))
    jax = run_in_one_process([first["data-error"]], tmp / "jax", cwd=work,
                             env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    results["jax-data-error"] = jax[0]
    return results, {"tmp": tmp, "work": work, "job": job, "commands": commands}


def _one_error_line(result: dict) -> str:
    lines = error_lines(result["stderr"])
    assert result["rc"] == 2 and len(lines) == 1, result["stderr"][-3000:]
    assert lines[0].startswith("framepred: error: ")
    return lines[0]


def test_sweep_folders_paste_back_and_keep_their_overrides(seen):
    results, places = seen
    job = places["job"]
    assert sorted(p.name for p in job.parent.iterdir() if p.is_dir()) == ["0"]
    assert (job / "overrides.txt").read_text().splitlines() == ["debug=fast", "loss=mse"]
    assert "overrides: debug=fast loss=mse" in (job / "train.log").read_text()
    # The next commands name the run's checkpoint, in a folder with a space, `,` and `=`.
    [evaluate, predict] = places["commands"]
    assert evaluate[:3] == ["python", "-m", "framepred.evaluate"]
    assert evaluate[3] == f"checkpoint='{job / 'checkpoints' / 'best.keras'}'"
    assert predict[:4] == ["python", "-m", "framepred.predict", evaluate[3]]
    # Predict reads the run's own first validation sequence: Moving Digits has no file.
    assert predict[4:7] == ["input=split:val", "predict.sequence=0", "predict.start=0"]
    assert predict[7] == f"output='{job / 'forecast'}'"
    # ... and they ran as pasted.
    for name in ("evaluate", "predict"):
        assert results[name]["rc"] == 0, results[name]["stderr"][-3000:]
    assert all(entry in results["evaluate"]["stdout"] for entry in ENTRIES)
    assert {p.name for p in (places["tmp"] / "evaluated").iterdir()} >= {
        "metrics.json", "metrics.csv", "tensorboard", "evaluate.log"}
    forecast = job / "forecast"
    with Image.open(forecast / "forecast.gif") as gif:
        assert gif.n_frames == 3 + 4  # context, then predict.steps=4
    assert len(list(forecast.glob("forecast_*.png"))) == 4
    assert "val_000: context frames 0-2 of 6" in results["predict"]["stdout"] + (
        forecast / "predict.log").read_text()
    # The lines are in the run's log too.
    assert shlex.join(evaluate) in (job / "train.log").read_text()


def test_misspelled_key_names_the_closest_key_first(seen):
    line = _one_error_line(seen[0]["misspelled"])
    assert line.startswith("framepred: error: trainer.epoch is not a config key; did you "
                           "mean trainer.epochs?"), line
    assert "+trainer.epoch" not in line


@pytest.mark.parametrize("command, groups", [
    ("train", ["data", "debug", "experiment", "loss", "model", "trainer"]),
    ("evaluate", ["data"]),
    ("predict", []),
    ("preview", ["data", "debug"]),
])
def test_help_lists_the_groups_each_command_takes(seen, command, groups):
    result = seen[0][f"help-{command}"]
    assert result["rc"] == 0, result["stderr"][-2000:]
    text = result["stdout"]
    listed = text[text.index("== Configuration groups =="):text.index("== Config ==")]
    names = [line.split(":")[0] for line in listed.splitlines()[2:]
             if ": " in line and not line.startswith("(")]
    assert names == groups, listed
    assert "debug/training" not in text and "hydra" not in names


def test_failed_commands_leave_no_folder(seen):
    results, places = seen
    assert "trainer.epochs=0" in _one_error_line(results["config-error"])
    assert "missing.npy" in _one_error_line(results["data-error"])
    assert "none.keras" in _one_error_line(results["evaluate-error"])
    assert "missing.npy" in _one_error_line(results["preview-error"])
    assert list(places["work"].iterdir()) == []  # no outputs/<command>/<time>/
    assert not (places["tmp"] / "fixed").exists()  # a fixed folder: no empty checkpoints/


def test_a_run_folder_that_stops_keeps_its_files_and_logs_the_error(seen):
    results, places = seen
    line = _one_error_line(results["restart-error"])
    assert "model.filters" in line
    job = places["job"]
    assert (job / "checkpoints" / "best.keras").is_file()
    assert (job / "train.log").read_text().splitlines()[-1] == line


def test_predict_without_output_is_one_line(seen):
    result = seen[0]["predict-without-output"]
    assert result["rc"] == 2
    assert [line for line in result["stderr"].splitlines() if line.strip()] == [
        "framepred: error: output is not set; give output=..., e.g. checkpoint=<run>/"
        "checkpoints/best.keras input=clip.gif output=out/"]


def test_evaluate_says_what_it_scores_before_the_table(seen):
    results, places = seen
    out = results["evaluate"]["stdout"]
    checkpoint = places["job"] / "checkpoints" / "best.keras"
    said = out.index(f"checkpoint:  {checkpoint}")
    data = out.index("data:        test split (data=moving_digits): 4 sequence(s), 4 window(s) "
                     "of 3 context + 3 future frames")
    table = out.index("beats best baseline?")
    assert said < data < table
    log = (places["tmp"] / "evaluated" / "evaluate.log").read_text()
    assert " t+3 |" in log and "beats best baseline?" in log
    assert f"checkpoint:  {checkpoint}" in log


def test_tensorflow_start_up_stays_quiet_under_jax(seen):
    result = seen[0]["jax-data-error"]
    # Every line, TensorFlow's included: the one error line and nothing else.
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["rc"] == 2 and len(lines) == 1, result["stderr"][-3000:]
    assert lines[0].startswith("framepred: error: data.path=")
    assert "oneDNN" not in result["stdout"] and "cuda" not in result["stdout"]
