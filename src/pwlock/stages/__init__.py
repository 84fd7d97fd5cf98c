"""The cached stages, one file each: `run(ctx, ...)` is the stage's run (its key: one visible
dict, with what is left out of it said), `compute(ctx, ...)` computes it if it is not finished.

    zoo      train a strong or weak model (toy), or record a pretrained model's files (path)
    samples  completions of a zoo model on a split (strong: greedy; weak: at a temperature)
    lock     password-lock the strong model, a checkpoint per epoch (sharded under torchrun)
    eval     greedy accuracy of a checkpoint on the test split, with or without the password
    elicit   one attack (E1's WSU included) on one lock checkpoint, every seed, evaluated
"""
