# The pruned Swin-T (blocks [2, 8, 9] without attention: MLP-only blocks), for
# evaluating / benchmarking checkpoints written by tools/prune.py:
#   python tools/test.py configs/imagenet/swin-tiny_nose-2-8-9-pruned_in1k-224px.py PRUNED.pth
_base_ = ['./swin-tiny_16xb64-300e_in1k-224px.py']
model = dict(backbone=dict(removed_layers=[2, 8, 9], compensate=True))
