# The tiny UperNet of tiny-upernet_ade20k.py (the runtime's ResultsHook writes results.json).
_base_ = ['./tiny-upernet_ade20k.py']
