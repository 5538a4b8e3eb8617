"""Keras's implicit masks between layers (an Embedding(mask_zero=True)'s padding mask, an
RNN's output mask): models call their layers through `call_with_mask`, which passes the mask
to a layer whose `call` takes `mask` and gives the mask of its output."""
import inspect


def takes_mask(layer):
    return 'mask' in inspect.signature(type(layer).call).parameters


def call_with_mask(layer, inputs, mask, *args, **kwargs):
    """(outputs, output mask) of `layer(inputs, ...)` given the inputs' mask (or None): the
    layer's `compute_mask` gives the new one; layers that support masking without changing it
    (`supports_masking`) keep it, and the others drop it, as in Keras."""
    if mask is not None and 'mask' not in kwargs and takes_mask(layer):
        kwargs['mask'] = mask
    outputs = layer(inputs, *args, **kwargs)
    if hasattr(layer, 'compute_mask'):
        mask = layer.compute_mask(inputs, mask)
        if isinstance(mask, (list, tuple)) and all(m is None for m in mask):
            mask = None   # one None per output: no mask
    elif not getattr(layer, 'supports_masking', False):
        mask = None
    return outputs, mask
