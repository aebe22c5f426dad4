"""The shared argument groups: declared once, parsed once, before a command does anything.

Each group both adds its options and parses them (``cli/args.py``); ``run_command`` parses every
group before the command runs. So the same bad value gets the same one line from every command that
takes the option, and it is refused before the model is opened (the model path here does not exist:
a command that opened it first would name the path instead) or any file is written.
"""

from __future__ import annotations

import argparse
import importlib

import pytest

from cbam_deploy.cli.args import BackendsArgs, BatchSizesArgs, OutputFileArg, PrecisionsArgs, ReportArgs, ResolutionsArgs
from cbam_deploy.cli.common import ArgumentParser, run_command
from cbam_deploy.errors import UsageError
from cbam_deploy.options import ONNX_PRECISIONS, PRECISIONS

MISSING = "no/such/model"


def _run(capsys, command: str, argv: list[str]) -> tuple[int, list[str]]:
    main = importlib.import_module(f"cbam_deploy.cli.{command}").main
    code = main(argv)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("command, argv", [
    ("validate", [MISSING]),
    ("bench", [MISSING]),
    ("gpu_check", ["--hosts", "resnet_mini"]),
])
def test_every_command_refuses_a_bad_precision_with_the_same_line_before_any_work(capsys, tmp_path, monkeypatch,
                                                                                   command, argv):
    monkeypatch.chdir(tmp_path)
    code, lines = _run(capsys, command, [*argv, "--precisions", "fp32,fp8"])
    assert code == 2 and len(lines) == 1, lines
    valid = ONNX_PRECISIONS if command == "gpu_check" else PRECISIONS  # gpu-check has no bf16 path
    assert lines[0].endswith(f"error: --precisions 'fp32,fp8': unknown fp8; valid: {', '.join(valid)}"), lines
    assert list(tmp_path.iterdir()) == []  # gpu-check's --out folder was not even created


@pytest.mark.parametrize("command, option, value", [
    ("validate", "--batch-sizes", "1,0"),
    ("bench", "--batch-sizes", "1,0"),
    ("gpu_check", "--batch-sizes", "1,0"),
    ("validate", "--backends", "onnxruntime-cpu,tpu"),
    ("bench", "--backends", "onnxruntime-cpu,tpu"),
    ("validate", "--resolutions", "64"),
])
def test_shared_options_are_parsed_before_the_model_is_opened(capsys, tmp_path, monkeypatch, command, option, value):
    monkeypatch.chdir(tmp_path)
    argv = ["--hosts", "resnet_mini"] if command == "gpu_check" else [MISSING]
    code, lines = _run(capsys, command, [*argv, option, value])
    assert code == 2 and len(lines) == 1 and f"error: {option} {value!r}" in lines[0], lines
    assert MISSING not in lines[0] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, option", [("bench", "--plot"), ("bench", "--json-out"), ("validate", "--markdown"),
                                             ("infer", "--attention-map")])
def test_an_existing_output_file_is_refused_before_the_model_is_opened(capsys, tmp_path, command, option):
    existing = tmp_path / "there.out"
    existing.write_text("keep me")
    argv = [MISSING, *(["x.npy"] if command == "infer" else []), option, str(existing)]
    code, lines = _run(capsys, command, argv)
    assert code == 2 and len(lines) == 1 and option in lines[0] and "--force" in lines[0], lines
    assert existing.read_text() == "keep me"


def test_groups_put_typed_values_on_the_namespace():
    parser = ArgumentParser(prog="cbam-test")
    for group in (PrecisionsArgs("fp32,fp16"), BackendsArgs(None), BatchSizesArgs("1,4"), ResolutionsArgs(),
                  OutputFileArg("--plot", "OUT.png", "a plot"), ReportArgs()):
        parser.add_group(group)
    args = parser.parse_args(["--precisions", "int8", "--resolutions", "64x64,96x80"])
    parser.parse_groups(args)
    assert args.precisions == ["int8"] and args.precisions_named
    assert args.backends is None and args.batch_sizes == [1, 4] and args.resolutions == [(64, 64), (96, 80)]
    defaults = parser.parse_args([])
    parser.parse_groups(defaults)
    assert defaults.precisions == ["fp32", "fp16"] and not defaults.precisions_named and defaults.resolutions is None
    with pytest.raises(UsageError, match="--batch-sizes"):
        parser.parse_groups(parser.parse_args(["--batch-sizes", "0"]))


def test_a_group_error_is_one_line_through_run_command(capsys):
    parser = ArgumentParser(prog="cbam-test")
    parser.add_group(BatchSizesArgs("1"))
    ran = []
    code = run_command("cbam-test", lambda args: ran.append(args) or 0, parser, ["--batch-sizes", "x"])
    err = capsys.readouterr().err
    assert code == 2 and not ran
    assert err == "cbam-test: error: --batch-sizes 'x': expected comma-separated integers\n"


def test_a_plain_argparse_parser_still_runs(capsys):
    """Commands built on plain argparse (a user's wrapper) go through run_command unchanged."""
    parser = argparse.ArgumentParser(prog="cbam-test")
    parser.add_argument("--n", type=int, default=3)
    assert run_command("cbam-test", lambda args: args.n, parser, []) == 3
