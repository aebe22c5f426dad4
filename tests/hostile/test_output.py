"""Output folders under attack: existing targets, races, read-only and full disks, failures midway.

One way output is written (``artifacts.staged_directory``): refused early when the target exists,
a lock against a second writer, a rename that never replaces, and nothing left behind on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cbam_deploy.artifacts import atomic_write_bytes, check_target, staged_directory
from cbam_deploy.errors import EXIT_ENVIRONMENT, EnvironmentProblem, UsageError

from .conftest import assert_refused, debris, run_cli, snapshot


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def readonly_dir(tmp_path: Path):
    """A folder nobody may write: chmod for a normal user; a read-only tmpfs for root (root ignores modes)."""
    folder = tmp_path / "readonly"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not _mount_tmpfs(folder, "ro,size=64k"):
        pytest.skip("running as root without permission to mount a read-only tmpfs")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def full_dir(tmp_path: Path):
    """A 64 KiB file system: any model fills it (ENOSPC midway)."""
    folder = tmp_path / "full"
    if not _mount_tmpfs(folder, "size=64k"):
        pytest.skip("needs root and mount to make a small file system")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_existing_target_is_refused_before_any_stage_runs(capfd, exported: Path):
    before = snapshot(exported)
    result = run_cli(capfd, "cbam-export", "--out", exported.parent, "--name", exported.name, "--arch", "resnet_mini")
    assert_refused(result, "cbam-export", 2, "already exists", "--force")
    assert "fold" not in result.err and "parity" not in result.err
    assert snapshot(exported) == before and not debris(exported.parent)


def test_api_export_refuses_an_existing_target(exported: Path):
    import torch

    from cbam_deploy.api.export import export
    from cbam_deploy.models import create_model

    before = snapshot(exported)
    with pytest.raises(UsageError, match="already exists"):
        export(create_model("resnet_mini", "original", num_classes=4).eval(), torch.randn(1, 3, 32, 32),
               out=exported.parent, name=exported.name)
    assert snapshot(exported) == before and not debris(exported.parent)


def test_second_writer_is_refused_while_the_first_holds_the_target(tmp_path: Path):
    target = tmp_path / "out" / "model"
    with staged_directory(target, force=False) as first:
        (first / "a.txt").write_text("first")
        with pytest.raises(UsageError, match="another process is writing"):
            with staged_directory(target, force=False):
                pass
    assert (target / "a.txt").read_text() == "first" and not debris(tmp_path)


def test_target_written_meanwhile_by_someone_else_is_left_alone(tmp_path: Path):
    target = tmp_path / "model"
    with pytest.raises(UsageError, match="appeared while this command ran"):
        with staged_directory(target, force=False) as staging:
            (staging / "mine.txt").write_text("loser")
            target.mkdir()  # another program (no lock) writes the target while we work
            (target / "theirs.txt").write_text("winner")
    assert snapshot(target) == {"theirs.txt": snapshot(target)["theirs.txt"]}
    assert not debris(tmp_path)


RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cbam_deploy.artifacts import staged_directory
    from cbam_deploy.errors import UsageError
    target, me, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    try:
        with staged_directory(target, force=False) as staging:
            (staging / "who.txt").write_text(me)
            while not go.exists():  # both hold their staging folders before either commits
                time.sleep(0.01)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
""")


def test_two_processes_racing_for_one_target_exactly_one_wins(tmp_path: Path):
    target, go = tmp_path / "models" / "race", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(target), name, str(go)], stderr=subprocess.PIPE,
                              text=True) for name in ("a", "b")]
    # The loser is refused at the lock, before it stages anything; then the winner may commit.
    codes = []
    loser = None
    for p in procs:
        try:
            p.wait(timeout=0.5)
            loser = p
        except subprocess.TimeoutExpired:
            pass
    go.touch()
    for p in procs:
        p.wait(timeout=60)
        codes.append(p.returncode)
    assert sorted(codes) == [0, 2], codes
    winner = "ab"[codes.index(0)]
    assert (target / "who.txt").read_text() == winner
    assert loser is None or loser.returncode == 2
    assert not debris(tmp_path)


def test_force_replaces_and_leaves_no_old_copy(tmp_path: Path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with staged_directory(target, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(os.listdir(target)) == ["new.txt"] and not debris(tmp_path)


def test_failed_forced_rewrite_keeps_the_old_folder(tmp_path: Path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_directory(target, force=True) as staging:
            (staging / "new.txt").write_text("half")
            raise RuntimeError("parity failed")
    assert sorted(os.listdir(target)) == ["old.txt"] and not debris(tmp_path)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, MemoryError])
def test_any_failure_midway_leaves_nothing_not_even_new_parent_folders(tmp_path: Path, exc: type[BaseException]):
    target = tmp_path / "new" / "deeper" / "model"
    with pytest.raises(exc):
        with staged_directory(target, force=False) as staging:
            (staging / "part.bin").write_bytes(b"x" * 1000)
            raise exc()
    assert os.listdir(tmp_path) == []


def test_target_that_is_a_file_is_refused_even_with_force(capfd, tmp_path: Path):
    (tmp_path / "model").write_text("a file")
    with pytest.raises(UsageError, match="not a folder"):
        check_target(tmp_path / "model", force=True)
    (tmp_path / "blocker").write_text("a file")
    result = run_cli(capfd, "cbam-export", "--out", tmp_path / "blocker" / "sub", "--name", "x")
    assert_refused(result, "cbam-export", 2, "blocker")
    assert sorted(os.listdir(tmp_path)) == ["blocker", "model"]


def test_read_only_output_folder_is_an_environment_error(capfd, readonly_dir: Path):
    result = run_cli(capfd, "cbam-export", "--out", readonly_dir, "--name", "x")
    assert_refused(result, "cbam-export", EXIT_ENVIRONMENT, str(readonly_dir))
    with pytest.raises(EnvironmentProblem, match=str(readonly_dir)):
        atomic_write_bytes(readonly_dir / "report.json", b"{}")
    assert os.listdir(readonly_dir) == []


def test_full_disk_is_an_environment_error_and_leaves_nothing(capfd, full_dir: Path):
    result = run_cli(capfd, "cbam-export", "--out", full_dir, "--name", "x", "--arch", "resnet_mini")
    assert_refused(result, "cbam-export", EXIT_ENVIRONMENT, "No space left", str(full_dir / "x"))
    assert os.listdir(full_dir) == []
    with pytest.raises(EnvironmentProblem, match="No space left"):
        atomic_write_bytes(full_dir / "big.bin", b"\0" * (1 << 20))
    assert os.listdir(full_dir) == []


def test_report_into_a_read_only_folder_is_an_environment_error(capfd, exported: Path, readonly_dir: Path):
    out = readonly_dir / "bench.json"
    result = run_cli(capfd, "cbam-bench", exported, "--no-eager", "--runs", "1", "--warmup", "0", "--batch-sizes", "1",
                     "--json-out", out)
    assert_refused(result, "cbam-bench", EXIT_ENVIRONMENT, str(readonly_dir))
    assert os.listdir(readonly_dir) == []


def test_staging_left_by_a_killed_process_is_removed_by_the_next_writer(tmp_path: Path):
    """SIGKILL cannot be handled: its staging folder stays until the next write to that target, which
    (holding the target's lock, so no other writer is alive) removes it; other names' folders stay."""
    import tempfile

    stale = Path(tempfile.mkdtemp(prefix=".model.", suffix=".partial", dir=tmp_path))
    (stale / "model.onnx").write_bytes(b"half")
    other = Path(tempfile.mkdtemp(prefix=".model.v2.", suffix=".partial", dir=tmp_path))
    with staged_directory(tmp_path / "model", force=False) as staging:
        (staging / "model.onnx").write_bytes(b"whole")
    assert sorted(os.listdir(tmp_path)) == [other.name, "model"]


def test_existing_target_is_refused_before_a_model_factory_runs(capfd, exported: Path, evil):
    """With --name the target is known: an existing one is refused before the user's code is imported."""
    before = snapshot(exported)
    result = run_cli(capfd, "cbam-export", "--model", evil.factory, "--input-shape", "1x3x32x32",
                     "--out", exported.parent, "--name", exported.name)
    assert_refused(result, "cbam-export", 2, "already exists")
    assert not evil.marker.exists() and snapshot(exported) == before
