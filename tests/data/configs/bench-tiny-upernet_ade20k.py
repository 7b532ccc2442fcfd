# The tiny UperNet of tiny-upernet_ade20k.py with the ResultsHook writing results.json.
_base_ = ['./tiny-upernet_ade20k.py']
custom_hooks = [dict(type='ResultsHook')]
