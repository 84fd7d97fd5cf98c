"""A nano E1 organism for end-to-end tests: trains in seconds."""

NANO = [
    "experiment=nano", "workers=2", "threads=1",
    "task.n_operands=3", "task.n_test=100", "task.n_elicit=20", "task.n_lock=100",
    "eval.max_new_tokens=24", "eval.batch_size=50",
    "lock.weak_model=weak", "lock.epochs=2", "lock.lr=5e-4", "lock.batch_size=16",
    "password.p_no_password=1.0", "password.position=start",
    "wsu.steps=10", "wsu.seeds=2",
]
ZOO = """
zoo:
  - {name: strong, arch: {hidden_size: 32, num_layers: 2, num_heads: 2, intermediate_size: 64},
     steps: 150, batch_size: 32, lr: 0.005}
  - {name: weak, arch: {hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64},
     steps: 40, batch_size: 32, lr: 0.005}
"""

