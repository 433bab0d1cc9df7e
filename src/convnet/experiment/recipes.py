"""Named recipes: bundles of a run's settings that `RunConfig.from_recipe` (``convnet train
--recipe NAME``) starts from, each measured on Fashion-MNIST (docs/results.md, "Fast training").
A recipe names only what it changes; options given beside it win.
"""

RECIPES = {
    # Of the speed records' methods tried on the reference CNN in the main job's 15 epochs, batch
    # norm's own learning rate with alternating flips won (mean of three seeds 0.9378 -> 0.9407; each
    # alone 0.9387 and 0.9371); whitening, Dirac initialisation, lookahead, crops and shifted test
    # views did not (docs/results.md).
    "fast": {
        "about": "the speed records' methods that won on Fashion-MNIST",
        "settings": {"augment": "altflip", "bn_lr_scale": 4.0},
    },
}
