"""The paper's claims as data: each statement, its source, its rule and thresholds.

The claims are those of Bazhenov, Dewasurendra, Krishnan & Delanois, "Sleep-like
unsupervised replay improves performance when data are limited or unbalanced"
(arXiv 2402.10956). :mod:`analysis.claims` tests them.
"""

from __future__ import annotations

from .outcomes import Rule

#: Training fractions the paper calls "limited" (claim 1); above it, claim 2 applies.
LIMITED_MAX = 0.10
#: The size of the paper's limited-data gain: 20-30 accuracy points.
CLAIMED_GAIN = 0.20
#: "A little" accuracy lost to sleep above 10 % (claim 2): at most 5 points.
SMALL_COST = 0.05
#: Below this accuracy a network is near chance on 10 classes: silence, not a sparse code.
NEAR_CHANCE = 0.20

STATEMENTS: dict[str, str] = {
    "limited": "Sleep improves accuracy by 20-30 points when trained on 0.5-10 % of the data.",
    "recovery": "Above 10 % of the data sleep costs a little accuracy; brief fine-tuning "
    "recovers it.",
    "balance": "Sleep makes classification more balanced on imbalanced data.",
    "sparsity": "Sleep makes network responses (activations) and synapses sparser.",
}

#: How each claim judges its primary effect (:mod:`analysis.outcomes`).
RULES: dict[str, Rule] = {
    "limited": Rule(size=CLAIMED_GAIN, sign=1),  # sleep - baseline, accuracy
    "recovery": Rule(size=0.0, sign=-1),  # a cost: sleep - baseline below 0
    "balance": Rule(size=0.0, sign=1),  # balanced accuracy
    "sparsity": Rule(size=0.0, sign=1),  # population sparseness, near-zero weights
}

#: Where each claim and threshold comes from. The abstract is quoted; the rest is labelled.
ABSTRACT = "arXiv 2402.10956v1, abstract"
SOURCES: dict[str, str] = {
    "limited": (
        f'"We found a significant boost in accuracy after the sleep phase for models trained '
        f'with limited data in the range of 0.5-10% of total MNIST or Fashion MNIST datasets" '
        f"({ABSTRACT}). The size, 20-30 points, is not in the abstract: it comes from summaries "
        'of the paper (e.g. its TL;DR: "20-30% accuracy gains for 0.5-10% data") and from '
        "the paper's figures; the 20-point threshold is that."
    ),
    "recovery": (
        f'"When more than 10% of the total data was used, sleep alone had a slight negative '
        f'impact on performance, but this was remedied by fine-tuning on the original data" '
        f'({ABSTRACT}). "Slight" is ours to size: at most {100 * SMALL_COST:.0f} points.'
    ),
    "balance": (
        'Not in the abstract (only the title says "limited or unbalanced"): from summaries '
        'of the paper ("Sleep also improves class balance").'
    ),
    "sparsity": (
        'Not in the abstract: from summaries of the paper ("producing sparser '
        'representations"). The measures are ours (see the rule).'
    ),
}
