# The pruned DeiT-Small on CIFAR-100 (attention layers [0, 2, 4, 6] removed), for
# tools/test.py and tools/benchmark.py on checkpoints written by tools/prune.py.
_base_ = ['./deit-small_8xb64-100e_cifar100-224px.py']
model = dict(backbone=dict(removed_layers=[0, 2, 4, 6], compensate=True, init_cfg=None))
