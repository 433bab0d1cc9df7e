"""Named recipes: bundles of a run's settings (the model's too, where the recipe needs one) that
`RunConfig.from_recipe` (``convnet train --recipe NAME``) starts from, each measured on
Fashion-MNIST (docs/results.md, "Fast training").
A recipe names only what it changes; options given beside it win.
"""

RECIPES = {
    # Of the speed records' methods tried on the reference CNN in the main job's 15 epochs, batch
    # norm's own learning rate with alternating flips won (mean of three seeds 0.9378 -> 0.9407; each
    # alone 0.9387 and 0.9371); Dirac initialisation, lookahead, crops and shifted test views did
    # not. airbench's whitening layer wins more (0.9427) but makes an epoch 1.5x as long: 15 epochs
    # no longer fit the main job's 5 minutes (docs/results.md).
    "fast": {
        "about": "the speed records' methods that won on Fashion-MNIST",
        "settings": {"augment": "altflip", "bn_lr_scale": 4.0},
    },
    # For 0.950 within an hour on two cores the reference CNN is too small (it overfits: 0.941 at
    # best); ResNet-8 with fast's methods reached 0.946 with AdamW, and 0.950 when Muon
    # orthogonalises its hidden layers' updates and the images are also shifted (docs/results.md).
    "hour": {
        "about": "0.950 within an hour: ResNet-8, fast's methods, crops and Muon",
        "settings": {"model": "resnet8", "augment": "crop,altflip", "bn_lr_scale": 4.0, "optimizer": "muon",
                     "epochs": 28},
    },
}
