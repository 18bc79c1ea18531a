"""Generate the ``dfr10-sd15`` task files (data) from templates, deterministically.

    python -m culbench.sd_sequences tasks/dfr10-sd15

The DFR paper's 10-step sequence (arXiv 2512.02657, v1 ``train.sh`` order) — characters,
celebrities, objects and styles — with three confusable related concepts per forget concept
(the v1 evaluation's confusables) and the 24 general concepts of its evaluation set (its 25
minus "dog", which v1 forgets). Prompts are authored here from templates (no LLM, nothing copied
from the DFR prompt files); mapped prompts swap the concept phrase for its anchor phrase and keep
the context. A test fails if the committed files differ from what this writes.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from culbench.tasks import prompt_csv, write_task_files

VERSION = 1
SEED = 2512_02657
N = {"forget": (100, 20, 20), "retain": (20, 10, 20)}  # train, val, eval prompts per concept
EVAL_SEEDS = list(range(8))

# (id, kind, phrase, anchor id, anchor phrase, related ids) in deletion order
STEPS = (
    ("pikachu", "character", "Pikachu", "cartoon_creature", "a cartoon creature", ("charmander", "squirtle", "jigglypuff")),
    ("brad_pitt", "celebrity", "Brad Pitt", "man", "a man", ("george_clooney", "leonardo_dicaprio", "matt_damon")),
    ("dog", "object", "a dog", "animal", "an animal", ("wolf", "fox", "cat")),
    ("golf_ball", "object", "a golf ball", "ball", "a ball", ("tennis_ball", "baseball", "ping_pong_ball")),
    ("van_gogh_style", "style", "Van Gogh style", "painting_style", "a painting style", ("impressionism_style", "monet_style", "post_impressionist_style")),
    ("apple", "object", "an apple", "fruit", "a fruit", ("pear", "tomato", "orange")),
    ("spiderman", "character", "Spiderman", "superhero", "a superhero", ("batman", "superman", "iron_man")),
    ("lionel_messi", "celebrity", "Lionel Messi", "football_player", "a football player", ("cristiano_ronaldo", "neymar", "kylian_mbappe")),
    ("cartoon_style", "style", "cartoon style", "photo_style", "a photographic style", ("anime_style", "comic_book_style", "3d_render_style")),
    ("banana", "object", "a banana", "fruit", "a fruit", ("mango", "pineapple", "cucumber")),
)
PHRASES = {
    "charmander": "Charmander", "squirtle": "Squirtle", "jigglypuff": "Jigglypuff",
    "george_clooney": "George Clooney", "leonardo_dicaprio": "Leonardo DiCaprio", "matt_damon": "Matt Damon",
    "wolf": "a wolf", "fox": "a fox", "cat": "a cat", "tennis_ball": "a tennis ball", "baseball": "a baseball",
    "ping_pong_ball": "a ping pong ball", "impressionism_style": "impressionism style", "monet_style": "Monet style",
    "post_impressionist_style": "post-impressionist style", "pear": "a pear", "tomato": "a tomato",
    "orange": "an orange", "batman": "Batman", "superman": "Superman", "iron_man": "Iron Man",
    "cristiano_ronaldo": "Cristiano Ronaldo", "neymar": "Neymar", "kylian_mbappe": "Kylian Mbappe",
    "anime_style": "anime style", "comic_book_style": "comic book style", "3d_render_style": "3D render style",
    "mango": "a mango", "pineapple": "a pineapple", "cucumber": "a cucumber",
}
GENERAL = {
    "pizza": "a pizza", "knife": "a knife", "bowtie": "a bowtie", "teddy_bear": "a teddy bear", "broom": "a broom",
    "french_horn": "a French horn", "harp": "a harp", "parachute": "a parachute", "clock": "a clock",
    "lighthouse": "a lighthouse", "hot_air_balloon": "a hot air balloon", "cactus": "a cactus",
    "snow_globe": "a snow globe", "windmill": "a windmill", "teapot": "a teapot", "kite": "a kite",
    "chessboard": "a chessboard", "umbrella": "an umbrella", "skateboard": "a skateboard", "telescope": "a telescope",
    "taylor_swift": "Taylor Swift", "monet_garden_style": "Monet style", "hello_kitty": "Hello Kitty",
    "elon_musk": "Elon Musk",
}
KIND_OF = {**{r: k for _, k, _, _, _, rel in STEPS for r in rel}, "taylor_swift": "celebrity",
           "elon_musk": "celebrity", "hello_kitty": "character", "monet_garden_style": "style"}

FRAMES = ("a photo of {x}", "a close-up photo of {x}", "a picture of {x}", "an image of {x}", "a snapshot of {x}",
          "a high quality photo of {x}", "a bright photo of {x}", "a blurry photo of {x}")
PLACES = ("in a park", "on a wooden table", "at the beach", "in the snow", "on a city street at night",
          "in a forest", "in a kitchen", "on a rooftop", "in the rain", "at sunset", "in a field of flowers",
          "next to a river", "in a living room", "on a mountain trail", "in a garden", "at a train station",
          "under a tree", "in the desert", "by a lake", "in a museum")
ACTIVITIES = ("smiling at the camera", "walking in a park", "on a red carpet", "at a press conference",
              "sitting in a cafe", "in a suit", "waving to fans", "on a beach", "reading a book", "in the rain",
              "laughing with friends", "at a train station", "giving an interview", "in a forest",
              "on a city street at night", "in a kitchen", "wearing sunglasses", "at sunset", "on a stage",
              "in a library")
SUBJECTS = ("a lighthouse by the sea", "a city street at night", "a bowl of fruit", "a portrait of a woman",
            "a small village in the hills", "a cat on a windowsill", "a sailing boat", "a field of wheat",
            "a bridge over a river", "a cafe terrace", "a mountain landscape", "an old man reading",
            "a vase of flowers", "a busy market", "a forest path", "a train in the countryside",
            "a girl with a red umbrella", "a castle on a hill", "a garden in spring", "a harbour at dawn")
STYLE_FRAMES = ("{s} in {x}", "a painting of {s} in {x}", "{s}, in {x}", "an artwork of {s} in {x}",
                "{s} drawn in {x}", "an illustration of {s} in {x}", "a sketch of {s} in {x}", "a poster of {s} in {x}")


def _kind(cid: str) -> str:
    return next((k for c, k, *_ in STEPS if c == cid), None) or KIND_OF.get(cid, "object")


def _templates(kind: str) -> list[str]:
    """Every frame × context template (with ``{x}`` for the concept phrase) of a kind (160 each)."""
    if kind == "style":
        return [f.replace("{s}", s) for f in STYLE_FRAMES for s in SUBJECTS]
    contexts = ACTIVITIES if kind == "celebrity" else PLACES
    return [f"{f} {c}" for f in FRAMES for c in contexts]


def rows(cid: str, phrase: str, role: str, anchor: str | None, rng: random.Random) -> list[tuple[str, str, str]]:
    """split,prompt,mapped rows: disjoint train/val/eval prompts drawn from the templates."""
    templates = _templates(_kind(cid))
    rng.shuffle(templates)
    n_train, n_val, n_eval = N["forget" if role == "forget" else "retain"]
    out = []
    for split, start, count in (("eval", 0, n_eval), ("val", n_eval, n_val), ("train", n_eval + n_val, n_train)):
        for template in templates[start : start + count]:
            mapped = template.format(x=anchor) if role == "forget" and split != "eval" and anchor else ""
            out.append((split, template.format(x=phrase), mapped))
    return sorted(out, key=lambda r: ("train", "val", "eval").index(r[0]))


def files() -> dict[str, str]:
    rng = random.Random(SEED)
    concepts = ["concepts:"]
    out: dict[str, str] = {}

    def write_csv(cid: str, data: list[tuple[str, str, str]]) -> None:
        out[f"prompts/{cid}.csv"] = prompt_csv(data)

    anchors: dict[str, str] = {}
    for cid, kind, phrase, anchor, anchor_phrase, related in STEPS:
        concepts.append(f"  - {{id: {cid}, kind: {kind}, name: \"{phrase}\", anchor: {anchor}, "
                        f"related: [{', '.join(related)}]}}")
        anchors[anchor] = anchor_phrase
        write_csv(cid, rows(cid, phrase, "forget", anchor_phrase, rng))
    for _, _, _, _, _, related in STEPS:
        for rid in related:
            concepts.append(f"  - {{id: {rid}, kind: {_kind(rid)}, name: \"{PHRASES[rid]}\"}}")
            write_csv(rid, rows(rid, PHRASES[rid], "related", None, rng))
    for gid, phrase in GENERAL.items():
        concepts.append(f"  - {{id: {gid}, kind: {_kind(gid)}, name: \"{phrase}\"}}")
        write_csv(gid, rows(gid, phrase, "general", None, rng))
    for aid, phrase in anchors.items():  # anchors are concepts (targets of the fixed mapping), not evaluated
        concepts.append(f"  - {{id: {aid}, kind: anchor, name: \"{phrase}\"}}")
    out["concepts.yaml"] = "# Generated by `python -m culbench.sd_sequences tasks/dfr10-sd15`; do not edit.\n" + "\n".join(concepts) + "\n"
    out["sequence.yaml"] = f"""# Generated by `python -m culbench.sd_sequences tasks/dfr10-sd15`; do not edit.
name: dfr10-sd15
version: {VERSION}
description: DFR's 10-step sequence (characters, celebrities, objects, styles) on Stable Diffusion 1.5
citation: "Distill, Forget, Repeat, arXiv:2512.02657 (sequence and confusables; prompts authored by culbench)"
model:
  backend: sd
judge:
  name: clip-zeroshot
concepts: concepts.yaml
prompts: prompts
steps: [{', '.join(c for c, *_ in STEPS)}]
retain:
  general: [{', '.join(GENERAL)}]
eval:
  sampler: {{steps: 50, guidance: 7.5}}
  seeds: [{', '.join(map(str, EVAL_SEEDS))}]
"""
    return out


def write(root: Path) -> None:
    write_task_files(root, files())


if __name__ == "__main__":
    write(Path(sys.argv[1]))
