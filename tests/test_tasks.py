"""Task files: every shipped sequence loads; malformed files fail naming file, line and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from culbench.catalog import PACKAGE_DIR, SEQUENCES, builtin_dir
from culbench.errors import TaskError
from culbench.tasks import load_sequence, resolve_sequence

MOCK = PACKAGE_DIR / "mocks" / "tasks" / "mock"
ALL_SEQUENCES = sorted(builtin_dir("tasks").rglob("sequence.yaml")) + [MOCK / "sequence.yaml"]


@pytest.mark.parametrize("path", ALL_SEQUENCES, ids=lambda p: p.parent.name)
def test_every_shipped_sequence_loads(path: Path) -> None:
    sequence = load_sequence(path)
    assert sequence.steps
    for step in range(1, len(sequence.steps) + 1):
        request = sequence.request(step)
        assert request.forget and all(pair.mapped for pair in request.forget)


def test_every_task_file_is_used_by_a_sequence() -> None:
    """No orphan YAML/CSV under tasks/: everything there is loaded by some sequence (the
    paraphrase probe's probes/<forget concept>.csv included)."""
    used = set()
    for path in ALL_SEQUENCES:
        seq = load_sequence(path)
        used |= {path.resolve(), (path.parent / seq.spec.concepts).resolve()}
        used |= {(path.parent / seq.spec.prompts / f"{c}.csv").resolve() for c in seq.roles}
        used |= {(path.parent / "probes" / f"{c}.csv").resolve() for c in seq.steps}
    for root in (builtin_dir("tasks"), MOCK):
        for file in root.rglob("*"):
            if file.suffix in (".yaml", ".csv"):
                assert file.resolve() in used, f"{file} is not used by any sequence"


def test_mock_sequence_structure() -> None:
    seq = resolve_sequence("mock")
    assert seq.id == "mock@1"
    assert seq.roles == {"red": "forget", "star": "forget", "orange": "related",
                         "pink": "related", "cross": "related", "blue": "general",
                         "circle": "general", "green": "general"}
    request = seq.request(2)
    assert request.concept.id == "star"
    assert [r.concept.id for r in request.related] == ["cross"]
    assert [p.concept.id for p in request.previous] == ["red"]
    assert request.forget[0].mapped.startswith("a blue circle")
    assert len(seq.eval_items(2, 2)) == 8 * 4
    assert resolve_sequence("mock@1").content_hash == seq.content_hash


def _copy_mock(tmp_path: Path) -> Path:
    target = tmp_path / "mock"
    shutil.copytree(MOCK, target)
    return target


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("sequence.yaml", "steps: [red, star]", "steps: [red, stra]",
         r"sequence.yaml:13: steps\[1\]: unknown concept 'stra' \(did you mean 'star'\?\)"),
        ("sequence.yaml", "version: 1", "version: one", r"sequence.yaml:4: version: Input should be"),
        ("sequence.yaml", "  backend: mock", "  backend: mock\n  weights: x",
         r"sequence.yaml:9: model.weights: unknown key; fix: remove it or use one of: backend, options"),
        ("sequence.yaml", "eval:", "evals:", r"sequence.yaml:16: evals: unknown key \(did you mean 'eval'\?\)"),
        ("sequence.yaml", "steps: [red, star]", "steps: [red, star", r"sequence.yaml:\d+: invalid YAML"),
        ("concepts.yaml", "related: [cross]", "related: [crosss]",
         r"concepts.yaml:3: concepts\[1\].related\[0\]: unknown concept 'crosss'"),
        ("prompts/red.csv", "train,a red square on the left,a blue square on the left",
         "train,a red square on the left,", r"red.csv:2: forget prompt has no mapped prompt"),
        ("prompts/blue.csv", "eval,a blue triangle in a photo,", "test,a blue triangle in a photo,",
         r"blue.csv:\d+: split 'test' is not one of train, val, eval"),
        ("sequence.yaml", "version: 1", "version: 1\nversion: 2",
         r"sequence.yaml:5: key 'version' is given twice \(first at line 4\); fix: keep one of them"),
        ("concepts.yaml", "related: [cross]", "related: [cross], related: [pink]",
         r"concepts.yaml:3: key 'related' is given twice \(first at line 3\)"),
    ],
)
def test_malformed_files_name_file_line_and_key(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    root = _copy_mock(tmp_path)
    path = root / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(TaskError, match=expected) as info:
        load_sequence(root / "sequence.yaml")
    assert "\n" not in info.value.one_line()
    assert "fix:" in info.value.one_line()


@pytest.mark.parametrize("file", ["sequence.yaml", "prompts/red.csv"])
def test_a_file_that_is_not_utf8_is_a_one_line_error(tmp_path: Path, file: str) -> None:
    root = _copy_mock(tmp_path)
    path = root / file
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([*lines[:2], lines[2] + b" \xff", *lines[3:]]))
    with pytest.raises(TaskError, match=rf"{file.split('/')[-1]}:3: not UTF-8 \(byte 0xff\); fix: save the file as UTF-8"):
        load_sequence(root / "sequence.yaml")


@pytest.mark.parametrize("file", ["sequence.yaml", "concepts.yaml", "prompts/red.csv"])
def test_a_byte_order_mark_is_accepted(tmp_path: Path, file: str) -> None:
    root = _copy_mock(tmp_path)
    path = root / file
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_sequence(root / "sequence.yaml").steps == load_sequence(MOCK / "sequence.yaml").steps


def test_unknown_sequence_and_version() -> None:
    from culbench.errors import RegistryError

    with pytest.raises(RegistryError, match="did you mean: mock"):
        resolve_sequence("mokc")
    with pytest.raises(TaskError, match="mock@7 is not available"):
        resolve_sequence("mock@7")
    assert "mock" in SEQUENCES
    with pytest.raises(TaskError, match="sequence file no/such.yaml not found") as info:
        resolve_sequence("no/such.yaml")
    assert "culbench ls sequences" in info.value.one_line()


def test_validation_split_replaces_every_evaluated_concepts_prompts() -> None:
    import pytest

    from culbench.errors import TaskError
    from culbench.tasks import resolve_sequence

    seq = resolve_sequence("toy10@1")
    val = seq.with_split("val")
    assert seq.with_split("eval") is seq
    for cid in seq.roles:
        assert val.prompts[cid].eval == tuple(p.prompt for p in seq.prompts[cid].val)
        assert not set(val.prompts[cid].eval) & set(seq.prompts[cid].eval)  # tuning never sees eval prompts
    assert val.request(1) == seq.request(1)  # training prompts are unchanged
    with pytest.raises(TaskError, match="unknown split"):
        seq.with_split("test")


def test_validation_split_gives_every_concept_the_profiles_image_count() -> None:
    from collections import Counter

    from culbench.tasks import resolve_sequence

    val = resolve_sequence("toy10@2").with_split("val")
    items = val.eval_items(24, 1)  # the standard profile: 24 prompts x 1 seed
    per_concept = Counter(item.concept for item in items)
    assert set(per_concept) == set(val.roles) and set(per_concept.values()) == {24}
    quillo = [(item.prompt_index, item.seed) for item in items if item.concept == "quillo"]
    assert len(set(quillo)) == 24 and {i for i, _ in quillo} == {0, 1, 2, 3}  # 4 prompts x 6 seeds
    assert {s for _, s in quillo} == set(val.spec.eval.seeds[:6])
    assert len(val.eval_items(2, 2)) == 4 * len(val.roles)
    eval_items = resolve_sequence("toy10@2").eval_items(6, 2)  # the benchmark split is unchanged
    assert Counter(item.concept for item in eval_items)["quillo"] == 12


def test_a_prompt_naming_a_forgotten_concept_is_found_and_refused_when_declared(tmp_path: Path) -> None:
    from culbench.leaks import find_leaks

    root = _copy_mock(tmp_path)
    assert find_leaks(load_sequence(root / "sequence.yaml")) == []
    blue = root / "prompts" / "blue.csv"
    lines = blue.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("train,"))
    lines[row] = "train,a blue star beside a red circle,"
    blue.write_text("\n".join(lines) + "\n")
    leaks = find_leaks(load_sequence(root / "sequence.yaml"))
    assert [(leak.step, leak.kind, leak.owner, leak.named) for leak in leaks] == [
        (1, "retain", "blue", "red"), (2, "retain", "blue", "star")]  # each at the first step it leaks
    sequence = root / "sequence.yaml"
    sequence.write_text(sequence.read_text() + "clean_prompts: true\n")
    with pytest.raises(TaskError, match=rf"blue.csv:{row + 1}: retain prompt 'a blue star beside a red circle' "
                                        r"names 'red', forgotten by step 1 of order 0 \(2 such prompts in all\)"):
        load_sequence(sequence)


def _copy_toy10(tmp_path: Path) -> Path:
    import shutil

    from culbench.catalog import builtin_dir

    root = tmp_path / "toy10"
    shutil.copytree(builtin_dir("tasks") / "toy10", root)
    return root


def _put_train_row(csv_file: Path, prompt: str) -> int:
    lines = csv_file.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("train,"))
    lines[row] = f"train,{prompt},"
    csv_file.write_text("\n".join(lines) + "\n")
    return row + 1


@pytest.mark.parametrize(("prompt", "named", "why"), [
    ("a red dotted square on a dark background, left", "red", "forgotten by step 3 of order 0"),
    ("an orange dotted square on a dark background, left", "orange", "a held-out concept"),
])
def test_toy10_validate_fails_with_one_line_on_a_leaking_copy(tmp_path: Path, prompt: str, named: str,
                                                              why: str) -> None:
    from conftest import run_cli

    root = _copy_toy10(tmp_path)
    ok = run_cli("tasks", "validate", str(root))
    assert ok.returncode == 0, ok.stderr
    line = _put_train_row(root / "prompts" / "square.csv", prompt)
    bad = run_cli("tasks", "validate", str(root))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    lines = [text for text in bad.stderr.splitlines() if text.strip()]
    assert len(lines) == 1, bad.stderr
    assert f"square.csv:{line}:" in lines[0] and f"names '{named}', {why}" in lines[0]


def test_a_held_out_concept_with_training_prompts_is_refused(tmp_path: Path) -> None:
    root = _copy_toy10(tmp_path)
    _put_train_row_after_header(root / "prompts" / "bolt.csv", "a bolt that is green and solid, dark background, left")
    with pytest.raises(TaskError, match="bolt.csv: a held-out concept has train/val prompts"):
        load_sequence(root / "sequence.yaml")


def _put_train_row_after_header(csv_file: Path, prompt: str) -> None:
    lines = csv_file.read_text().splitlines()
    csv_file.write_text("\n".join([lines[0], f"train,{prompt},", *lines[1:]]) + "\n")


def test_an_order_that_is_not_a_permutation_of_the_steps_is_refused(tmp_path: Path) -> None:
    root = _copy_toy10(tmp_path)
    sequence = root / "sequence.yaml"
    text = sequence.read_text()
    sequence.write_text(text.replace("val_order: [quillo,", "val_order: [quillo, quillo,"))
    with pytest.raises(TaskError, match=r"sequence.yaml:\d+: val_order is not an order of the steps"):
        load_sequence(sequence)
