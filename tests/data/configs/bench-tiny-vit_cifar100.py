# The tiny CIFAR-100 ViT of tiny-vit_cifar100.py on nose_mm's NoseVisionTransformer,
# (benchmark and leaderboard tests; the runtime's ResultsHook writes results.json).
_base_ = ['./tiny-vit_cifar100.py']
model = dict(backbone=dict(type='NoseVisionTransformer'))
