# The pruned DeiT-Base on CIFAR-100 (attention layers [0, 1, 3, 4, 6, 9] removed), for
# tools/test.py and tools/benchmark.py on checkpoints written by tools/prune.py.
_base_ = ['./deit-base_8xb64-100e_cifar100-224px.py']
model = dict(backbone=dict(removed_layers=[0, 1, 3, 4, 6, 9], compensate=True, init_cfg=None))
