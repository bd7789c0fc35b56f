"""What the tests read off a state entry in bitsandbytes' layout (octopage's and
bitsandbytes' alike): 8-bit state decoded to fp32."""
import torch


def decoded(entry, key):
    """State `key` of an entry ("state1", ...) as fp32 values, flat: 8-bit codes through
    their qmap and absmax, row by row where states are stacked (AdEMAMix's state1 with
    absmax1 of shape (2, blocks)); 32-bit values as they are."""
    values = entry[key]
    if values.dtype != torch.uint8:
        return values.flatten().float()
    suffix = key[len("state"):]
    absmax = entry["absmax" + suffix]
    absmax = absmax.reshape(-1, absmax.shape[-1])
    codes = values.reshape(absmax.shape[0], -1)
    return torch.cat([entry["qmap" + suffix][row.long()] * blocks.repeat_interleave(256)[:row.numel()]
                      for row, blocks in zip(codes, absmax)])
