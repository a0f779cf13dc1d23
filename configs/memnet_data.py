"""Writes configs/data/memnet.npz: a tiny bAbI-like task for configs/memnet.yaml.

Each story is four facts "<person> went <place>"; the question is "where is <person>";
the answer is the place that person went to last. Deterministic (seed 0), no download:
    python configs/memnet_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PEOPLE = ["mary", "john", "sandra", "daniel"]
PLACES = ["kitchen", "garden", "office", "hallway", "bathroom", "bedroom"]
VOCAB = ["<pad>", "went", "where", "is", *PEOPLE, *PLACES]  # 14 tokens
FACTS, SAMPLES = 4, 1200


def make(seed: int = 0, samples: int = SAMPLES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    token = {word: i for i, word in enumerate(VOCAB)}
    stories, questions, answers = [], [], []
    for _ in range(samples):
        who = rng.choice(PEOPLE, FACTS)
        where = rng.choice(PLACES, FACTS)
        asked = rng.choice(who)
        last = [w for p, w in zip(who, where) if p == asked][-1]
        stories.append([token[x] for p, w in zip(who, where) for x in (p, "went", w)])
        questions.append([token["where"], token["is"], token[asked]])
        answers.append(token[last])
    return {"story": np.array(stories, np.int32), "question": np.array(questions, np.int32),
            "answer": np.array(answers, np.int32)}


if __name__ == "__main__":
    target = Path(__file__).with_name("data") / "memnet.npz"
    target.parent.mkdir(exist_ok=True)
    np.savez_compressed(target, **make())
    print(f"wrote {target}")
