"""Named recipes: bundles of a run's settings that `RunConfig.from_recipe` (``convnet train
--recipe NAME``) starts from, each measured on Fashion-MNIST (docs/results.md, "Fast training").
A recipe names only what it changes; options given beside it win.
"""

RECIPES = {
    "fast": {
        "about": "the CIFAR-10 speed records' methods that won on Fashion-MNIST",
        "settings": {"augment": "crop,altflip", "test_translate": 1},
    },
}
