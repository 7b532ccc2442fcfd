# The pruned DeiT-Tiny (attention layers [0, 2, 4] removed: MLP-only blocks), for
# evaluating / benchmarking checkpoints written by tools/prune.py:
#   python tools/test.py configs/imagenet/deit-tiny_nose-0-2-4-pruned_in1k-224px.py PRUNED.pth
_base_ = ['./deit-tiny_8xb128-300e_in1k-224px.py']
model = dict(backbone=dict(removed_layers=[0, 2, 4], compensate=True))
