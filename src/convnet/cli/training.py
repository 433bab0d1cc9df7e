"""``convnet train``: start or resume a run, train it, and report the test figures."""

import sys
from pathlib import Path

from .. import experiment, run_folder
from ..errors import ConvnetError
from .commands import CommandError, report, views
from .options import given_settings

ALLOWED_WITH_RESUME = {"data"}  # where the dataset lies on this machine, not a setting of the run


def train(args):
    from ..train import TrainingDiverged, TrainingInterrupted
    args.group = group = _training_group(args.distributed)
    say = print if group.rank == 0 else _silent  # rank 0 speaks for the job
    progress = not args.no_progress
    settings = given_settings(args)
    created = False
    if args.resume:
        given = [f"--{name.replace('_', '-')}" for name in settings if name not in ALLOWED_WITH_RESUME]
        if given:
            raise CommandError(f"--resume continues a run with its saved settings; drop {', '.join(given)}")
        run = experiment.resume(args.resume, args.data, progress, group=group)
        if run.trainer.epoch >= run.config.epochs:
            say(f"{run.run_dir} finished its {run.config.epochs} epochs already; its reports are rebuilt from "
                f"the checkpoint")
        else:
            say(f"resuming {run.run_dir} at epoch {run.trainer.epoch + 1}, batch {run.trainer.batch}")
    else:
        if args.time_budget is not None and args.epochs is not None:
            raise CommandError("give --epochs or --time-budget, not both: the budget decides the epochs")
        recipe = settings.pop("recipe", None)
        config = (experiment.RunConfig(**settings) if recipe is None
                  else experiment.RunConfig.from_recipe(recipe, **settings))
        run_dir = Path(args.out) if args.out else run_folder.default_run_dir(config.model)
        created = not run_dir.exists()
        try:
            run = experiment.start(config, run_dir, progress, group=group)
        except experiment.RunExists as exists:
            raise CommandError(f"{exists}; continue it with --resume {run_dir} or choose another --out") from None
        start = f"from the weights in {config.init_from}" if config.init_from else f"from seed {config.seed}"
        ranks = f" on {group.size} ranks (each a share of every batch of {config.batch_size})" if group.size > 1 else ""
        scored = views(config.test_time_mirroring, config.test_translate)
        named = "test-time views" if config.test_translate else "test-time mirroring"
        mirroring = f"; test images are also scored {scored} ({named})" if scored else ""
        on = (f"{config.dataset} ({len(run.train)} images)" if config.is_idx
              else f"{config.data}: {run.data_summary}")
        recipe = f" with the {config.recipe} recipe" if config.recipe else ""
        say(f"training {config.model}{recipe} on {on} for {config.epochs} "
            f"epoch{'s' if config.epochs > 1 else ''} {start}{ranks}{mirroring}; run folder {run_dir}")
        for note in run.notes:
            say(f"note: {note}")
    if args.watch is not None and group.rank == 0:
        _watch_in_background(run.run_dir, args.watch, args.lang)
    try:
        run.trainer.fit(run.config.epochs)
    except TrainingDiverged as diverged:
        raise CommandError(f"{diverged}; {_what_is_kept(run, created)}. Try a lower learning rate (--lr)") from None
    except TrainingInterrupted as stopped:
        say(f"convnet: {stopped}; saved to {run.run_dir / run_folder.WEIGHTS}; resume with: convnet train --resume "
            f"{run.run_dir}", file=sys.stderr)
        return 128 + stopped.signal_number  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
    except ConvnetError:  # refused as training began (a folder it cannot write, ...): leave no empty run folder
        if created:
            run_folder.remove_if_unsaved(run.run_dir)
        raise
    result = run.trainer.evaluate()
    if group.rank == 0:
        report(result, run.train.classes)
        print(f"confusion matrix: {run.run_dir / run_folder.CONFUSION}")
    return 0


def _silent(*args, **options):
    pass


def _watch_in_background(run_dir, port, language):
    """`convnet watch`'s page for the run being trained, served from a daemon thread (it ends with
    the training process)."""
    import threading
    from ..watch import make_server
    run_dir.mkdir(parents=True, exist_ok=True)
    server = make_server(run_dir, port=port, language=language)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("watch the run at http://%s:%d/" % server.server_address[:2], flush=True)


def _training_group(distributed):
    """The ranks this process trains among: an MPI job's with --distributed, else this process
    alone (refusing an MPI launch without --distributed, which would train N copies into one folder)."""
    from ..distributed import launched_by_mpirun, world
    from ..train import ONE_PROCESS
    ranks = launched_by_mpirun()
    if not distributed:
        if ranks > 1:
            raise CommandError(f"started by mpirun as one of {ranks} processes without --distributed, each would "
                               f"train its own copy into the same folder; add --distributed to train one model on "
                               f"all {ranks}")
        return ONE_PROCESS
    if ranks == 1:
        print("--distributed: not started by mpirun (mpirun -n N convnet train --distributed ...), so this is a "
              "job of one rank: training as one process")
        return ONE_PROCESS
    return world()


def _what_is_kept(run, created):
    """After a run diverged: which checkpoint stays, or that none was saved (and then the folder
    this run created, holding nothing but what a run that cannot resume leaves, goes)."""
    if run_folder.has_checkpoint(run.run_dir):
        return f"the last checkpoint in {run.run_dir} is kept"
    if created and run_folder.remove_if_unsaved(run.run_dir):
        return f"no epoch finished, so nothing was saved ({run.run_dir} removed)"
    return "no epoch finished, so nothing was saved"
