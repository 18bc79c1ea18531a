"""The registries and how built-in entries are found without importing torch.

* ``METHODS``: built-ins are the ``@register_method("name")`` classes in ``methods/*.py``,
  found by reading the files' syntax trees (no import), so dropping a new file into
  ``methods/`` registers it; third-party methods come from the ``culbench.methods``
  entry-point group. ``method_role(name)`` says how the leaderboard shows a method's rows.
* ``MODELS``: model backends (``"mock"``, ``"toyworld"``, ``"sd"``) as lazy factories.
* ``JUDGES``: evaluators that decide whether an image shows a concept.
* ``CLIP_SCORERS`` and ``REFERENCES``: quality evaluators (CLIP score; real images for FID)
  named by a sequence's ``eval.clip`` / ``eval.reference``.
* ``REGULARISERS``: add-ons a gradient-trained method takes by name, ``esd+l2sp``
  (``culbench.regularisers``); ``METHODS`` derives such a composed method on first lookup.
* ``PROBES``: robustness probes run on a run's checkpoints (``culbench probe``).
* ``SEQUENCES``: every ``sequence.yaml`` under the built-in ``tasks/`` and the mocks.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from culbench.errors import RegistryError
from culbench.registry import Registry

PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_dir(name: str) -> Path:
    """Folder of the built-in ``methods`` or ``tasks``.

    A wheel installs them inside the package (``culbench/methods``); in a source checkout
    they are top-level folders beside ``culbench/``.
    """
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else PACKAGE_DIR.parent / name


METHODS: Registry[Any] = Registry("method", entry_point_group="culbench.methods",
                                  check="culbench.contract:check_method_class",
                                  derive="culbench.regularisers:compose")
REGULARISERS: Registry[Any] = Registry("regulariser", entry_point_group="culbench.regularisers",
                                       list_command="culbench ls methods")
MODELS: Registry[Any] = Registry("model backend", list_command="culbench ls models")
JUDGES: Registry[Any] = Registry("judge", list_command="culbench ls judges")
CLIP_SCORERS: Registry[Any] = Registry("CLIP scorer", list_command="culbench ls judges")
REFERENCES: Registry[Any] = Registry("reference image set", list_command="culbench ls judges")
FEATURES: Registry[Any] = Registry("FID feature extractor", list_command="culbench ls judges")
SEQUENCES: Registry[Path] = Registry("sequence")
PROBES: Registry[Any] = Registry("probe", list_command="culbench ls probes")
METHOD_ROLES = ("ranked", "reference", "oracle")  # see culbench.api.Method.role
_BUILTIN_ROLES: dict[str, str] = {}  # built-in method name -> the literal role in its class body


def _decorated_name(decorator: ast.expr) -> str | None:
    """``"x"`` for a ``@register_method("x")`` decorator, else ``None``."""
    if not (isinstance(decorator, ast.Call) and decorator.args):
        return None
    func = decorator.func
    func_name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    first = decorator.args[0]
    if func_name == "register_method" and isinstance(first, ast.Constant):
        return str(first.value)
    return None


def _literal_role(node: ast.ClassDef) -> str:
    """The class body's ``role = "..."`` (or ``role: ClassVar[str] = "..."``), else ``"ranked"``."""
    for stmt in node.body:
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        else:
            continue
        named = any(isinstance(t, ast.Name) and t.id == "role" for t in targets)
        if named and isinstance(stmt.value, ast.Constant):
            return str(stmt.value.value)
    return "ranked"


def method_role(name: str) -> str:
    """How the leaderboard shows ``name``'s rows: ``"ranked"``, ``"reference"`` or ``"oracle"``
    (``culbench.api.Method.role``). A built-in's is read from its file's syntax tree (no import,
    no torch); a plugin's class is imported. Unknown names raise ``RegistryError``."""
    entry = METHODS.entry(name)
    if entry.obj is None and entry.source == "builtin" and name in _BUILTIN_ROLES:
        role = _BUILTIN_ROLES[name]
    else:
        role = str(getattr(METHODS.get(name), "role", "ranked"))
    if role not in METHOD_ROLES:
        raise RegistryError(f"method '{name}' declares role '{role}'",
                            f"set its role to one of: {', '.join(METHOD_ROLES)}")
    return role


def _discover_methods(registry: Registry[Any]) -> None:
    folder = builtin_dir("methods")
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                name = _decorated_name(decorator)
                if name is None:
                    continue
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                _BUILTIN_ROLES[name] = _literal_role(node)
                registry.register_lazy(
                    name,
                    f"culbench.methods.{path.stem}:{node.name}",
                    summary=doc[0] if doc else "",
                )


def source_summary(target: str) -> str:
    """First line of the docstring of ``module:Class`` (else of its module), read from the source
    file without importing it (a plugin may import torch); ``""`` when the file is not found."""
    import importlib.machinery
    import importlib.util

    module, _, attr = target.partition(":")
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: found, not imported
        for part in parts[1:]:  # submodules: searched in the parent's folder, no __init__ run
            spec = importlib.machinery.PathFinder.find_spec(part, spec.submodule_search_locations or [])
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (AttributeError, ImportError, OSError, SyntaxError, TypeError, ValueError):
        return ""
    node: ast.AST | None = tree
    for name in attr.split(".") if attr else []:
        body = getattr(node, "body", [])
        node = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == name), None)
    doc = (ast.get_docstring(node) if node is not None else None) or ast.get_docstring(tree) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def summary_of(entry: Any) -> str:
    """What ``culbench ls`` shows for a registry entry: its summary, else (plugins register none)
    its docstring's first line, from the loaded object or read from its source file."""
    if entry.summary:
        return entry.summary
    if entry.obj is not None:
        doc = (getattr(entry.obj, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""
    return source_summary(entry.target)


SEQUENCE_VERSIONS: dict[str, dict[int, Path]] = {}  # name -> version -> sequence.yaml (archived ones too)


def _discover_sequences(registry: Registry[Path]) -> None:
    """Registers each sequence name for its newest version; every version's file is kept in
    ``SEQUENCE_VERSIONS`` (older ones live under ``tasks/archive/``)."""
    import yaml  # light; no torch

    roots = [builtin_dir("tasks"), PACKAGE_DIR / "mocks" / "tasks"]
    newest: dict[str, tuple[int, Path, str]] = {}
    for root in roots:
        for path in sorted(root.rglob("sequence.yaml")):
            try:
                head = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                head = {}
            name = str(head.get("name") or path.parent.name) if isinstance(head, dict) else ""
            if not name:
                continue
            version = head.get("version") if isinstance(head.get("version"), int) else 0
            SEQUENCE_VERSIONS.setdefault(name, {})[version] = path
            summary = str(head.get("description", "")).strip().splitlines()
            if name not in newest or version > newest[name][0]:
                newest[name] = (version, path, summary[0] if summary else "")
    for name, (_, path, summary) in newest.items():
        registry.register(name, path, summary=summary, target=str(path))


METHODS.add_discoverer(_discover_methods)
SEQUENCES.add_discoverer(_discover_sequences)
MODELS.register_lazy(
    "mock", "culbench.mocks.model:build_mock_model", summary="tiny random diffusers model (tests)"
)
MODELS.register_lazy(
    "toyworld", "culbench.toyworld.model:build_toyworld_model",
    summary="the embedded ToyWorld model (shipped weights; 32 px, 8x8 latents)",
)
MODELS.register_lazy(
    "sd", "culbench.models.sd:build_sd_model",
    summary="Stable Diffusion v1.x from a diffusers folder or cached hub id (--model PATH_OR_ID)",
)
JUDGES.register_lazy(
    "toyworld", "culbench.toyworld.judge:ToyWorldJudge",
    summary="ToyWorld CNN judge, one head per attribute",
)
JUDGES.register_lazy(
    "toyworld-clip-zeroshot", "culbench.toyworld.clip_judge:ToyWorldClipZeroShotJudge",
    summary="ToyWorld second judge: tiny-CLIP zero-shot over every value of a concept's kind "
            "(--judge-option version=2 for v2 weights)",
)
JUDGES.register_lazy(
    "clip-zeroshot", "culbench.evaluation.clip_judge:ClipZeroShotJudge",
    summary="open_clip zero-shot among a concept and its confusables (weights from your local cache)",
)
JUDGES.register_lazy(
    "uc-classifier", "culbench.evaluation.uc_judge:UnlearnCanvasJudge",
    summary="UnlearnCanvas style/object ViT classifiers (--judge-option classifier_dir=DIR)",
)
JUDGES.register_lazy(
    "vlm-yesno", "culbench.evaluation.vlm_judge:VLMJudge",
    summary="VLM yes/no with confusables, DFR's judge (Qwen2.5-VL; --judge-option model=PATH; extra: vlm)",
)
CLIP_SCORERS.register_lazy(
    "openclip", "culbench.evaluation.clip_judge:OpenCLIPEmbedder",
    summary="open_clip CLIP score (model/pretrained from your local cache)",
)
JUDGES.register_lazy(
    "mock", "culbench.mocks.judge:MockJudge", summary="fixed random projections (tests)"
)
CLIP_SCORERS.register_lazy(
    "toyworld-clip", "culbench.toyworld.clip:ToyWorldCLIP",
    summary="tiny open_clip model trained on ToyWorld captions",
)
FEATURES.register_lazy(
    "inception", "culbench.evaluation.inception:InceptionFeatures",
    summary="clean-fid's Inception-v3 pool features (--fid-option path=inception-2015-12-05.pt)",
)
REFERENCES.register_lazy(
    "toyworld-renders", "culbench.toyworld.data:ToyWorldRenders",
    summary="renders of the scenes the evaluation prompts describe",
)
PROBES.register_lazy(
    "paraphrase", "culbench.probes.paraphrase:ParaphraseProbe",
    summary="presence of each forgotten concept under its synonyms and paraphrases (the sequence's probes/ prompts)",
)
PROBES.register_lazy(
    "agreement", "culbench.probes.agreement:JudgeAgreementProbe",
    summary="the run's judge against a second judge (tiny-CLIP zero-shot) on a sample of the images: Cohen's kappa",
)
PROBES.register_lazy(
    "relearn", "culbench.probes.relearn:RelearnProbe",
    summary="relearning attack: fine-tune on a few renders of each forgotten concept, record its restoration curve",
)
PROBES.register_lazy(
    "attack", "culbench.probes.attack:SoftPromptAttack",
    summary="presence of each forgotten concept after a white-box soft prompt attack on its name "
            "(textual inversion on ToyWorld renders)",
)
for _name, _cls, _what in (
        ("l1sp", "L1SP", "L1-SP: mean |θ − θ₀| penalty on the trained weights (CUIG)"),
        ("l2sp", "L2SP", "L2-SP: mean (θ − θ₀)² penalty on the trained weights (CUIG)"),
        ("selft", "SelFT", "SelFT: only the top-k most important trained weights change (CUIG)"),
        ("gradproj", "GradProj", "cross-attention K/V gradients projected off the kept concepts' embeddings (CUIG)")):
    REGULARISERS.register_lazy(_name, f"culbench.regularisers:{_cls}", summary=_what)
