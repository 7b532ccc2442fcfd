# The tiny CIFAR-100 ViT of tiny-vit_cifar100.py on nose_mm's NoseVisionTransformer,
# with the ResultsHook writing results.json (benchmark and leaderboard tests).
_base_ = ['./tiny-vit_cifar100.py']
model = dict(backbone=dict(type='NoseVisionTransformer'))
custom_hooks = [dict(type='ResultsHook')]
