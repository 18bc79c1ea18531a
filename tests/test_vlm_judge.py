"""The vlm-yesno judge: DFR's questions with confusables, the yes-rule, and a tiny random
Qwen2.5-VL loaded from a folder through the real transformers path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from culbench.evaluation.vlm_judge import VLMJudge
from culbench.tasks import resolve_sequence


class FakeVLM:
    spec = "fake"
    max_new_tokens = 3

    def __init__(self, answers: list[str]) -> None:
        self.answers, self.asked = answers, []

    def answer(self, images, questions):  # noqa: ANN001, ANN201
        self.asked += list(questions)
        return [(self.answers[(len(self.asked) - len(questions) + i) % len(self.answers)], 0.5)
                for i in range(len(questions))]


def test_questions_use_the_sequences_confusables_and_the_yes_rule() -> None:
    seq = resolve_sequence("toy10")
    fake = FakeVLM(["Yes.", "no", " yes it is", "Maybe"])
    judge = VLMJudge(vlm=fake, batch_size=3)
    judge.bind(seq.concepts, seq.roles)
    forget = seq.concepts[seq.steps[1]]  # star
    related = seq.concepts[forget.related[0]]
    far = seq.concepts[seq.general_concepts[0]]
    out = judge(torch.rand(4, 3, 32, 32), [forget, related, far, forget])
    assert out.present == [True, False, True, False]
    assert f"Do NOT count {', '.join(seq.concepts[r].name for r in forget.related)} as {forget.name}" in fake.asked[0]
    assert forget.name in fake.asked[1].split("Do NOT count")[1]  # a related concept's confusables include the target
    assert "Do NOT count" not in fake.asked[2]  # far concepts get the plain question
    assert judge.fingerprint()["model"] == "fake"


def test_tiny_qwen25_vl_runs_through_transformers(tmp_path: Path) -> None:
    from tests.helpers.tiny_vlm import write_tiny_vlm

    folder = write_tiny_vlm(tmp_path / "vlm")
    seq = resolve_sequence("toy10")
    judge = VLMJudge(model=str(folder), batch_size=2)
    judge.bind(seq.concepts, seq.roles)
    concepts = [seq.concepts[c] for c in seq.steps[:3]]
    out = judge(torch.rand(3, 3, 32, 32), concepts)
    assert len(out.present) == 3 and all(0.0 <= s <= 1.0 for s in out.score)
    assert all(p == d["answer"].lower().startswith("yes") for p, d in zip(out.present, out.detail))


def test_missing_vlm_is_a_one_line_error(tmp_path: Path) -> None:
    from culbench.errors import CulbenchError

    with pytest.raises(CulbenchError, match="could not be loaded") as info:
        VLMJudge(model=str(tmp_path / "nowhere"))
    assert "--judge-option model=" in info.value.fix


def test_run_with_another_judge_is_labelled_and_recorded(tmp_path: Path) -> None:
    import json

    from culbench.runner import run
    from tests.helpers.tiny_vlm import write_tiny_vlm

    folder = write_tiny_vlm(tmp_path / "vlm")
    run_dir = run("original", sequence="mock", profile="smoke", out=tmp_path / "r", threads=2,
                  judge="vlm-yesno", judge_options={"model": str(folder)})
    assert run_dir.parent.parent.name == "original~vlm-yesno"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["judge"] == "vlm-yesno" and summary["evaluators"][0]["name"] == "vlm-yesno"
