"""DTensor parameters (FSDP2's fully_shard, tensor parallelism): the core updates each
rank's local shard in place, and the state it keeps for that shard goes in and out of
state_dict as DTensors, so torch.distributed.checkpoint saves every rank's part.

Nothing here imports torch.distributed: while no DTensor exists, none is looked for.
"""
import math
import sys

import torch


def dtensor_class():
    """torch's DTensor class, or None while torch.distributed.tensor is not imported (then
    no DTensor exists, so plain training never pays for the import)."""
    module = sys.modules.get("torch.distributed.tensor")
    return None if module is None else module.DTensor


def is_dtensor(t):
    cls = dtensor_class()
    return cls is not None and isinstance(t, cls)


def local_param(p):
    """(the tensor the core updates, the whole parameter's numel or None) for a parameter
    (not detached: detach it before DLPack).
    A DTensor's 8-bit-or-not decision is taken on the whole parameter (format_numel), so
    every rank chooses the format an unsharded run would."""
    if is_dtensor(p):
        return p.detach().to_local(), p.numel()
    return p, None


def local_grad(p, g):
    """The gradient's local tensor. A DTensor gradient must be placed as its parameter (FSDP2
    reduce-scatters it so): the local shard of a Partial gradient is not yet the gradient."""
    if is_dtensor(g):
        placements = p.placements if is_dtensor(p) else None
        if g.placements != placements:
            raise ValueError(f"expected the gradient of a DTensor parameter to be placed as the parameter "
                             f"{placements}, got {g.placements}; reduce or redistribute it before step()")
        return g.to_local()
    return g


def local_shape(p):
    return p.to_local().shape if is_dtensor(p) else p.shape


# Note [Sharded 8-bit absmax]
# A shard's 8-bit state has one absmax per block of 256 of the shard's own elements
# (blocks start where the shard starts), so absmax is no slice of a whole-parameter
# tensor. In a state_dict it is a 1-D DTensor sharded over every mesh dimension that
# shards the parameter, each rank's part padded with zeros to the most blocks any shard
# of the parameter can have: the parts are equal, so the DTensor is evenly sharded and a
# checkpoint gives each rank its own blocks back. It resumes on the same sharding (the
# codes and 32-bit state, DTensors shaped like the parameter, reshard as torch's do).

def _max_shard_numel(p):
    """The most elements a shard of p can have (torch.chunk's split, dimension by dimension)."""
    shape = list(p.shape)
    for mesh_dim, placement in enumerate(p.placements):
        if placement.is_shard():
            shape[placement.dim] = -(-shape[placement.dim] // p.device_mesh.size(mesh_dim))
    return math.prod(shape)


def like_param(local, p):
    """local (shaped like p's local shard) as a DTensor placed as p."""
    return dtensor_class().from_local(local, p.device_mesh, p.placements, run_check=False, shape=p.shape,
                                      stride=p.stride())


def sharded_absmax(local, p, blocks_of):
    """A shard's absmax as the DTensor of Note [Sharded 8-bit absmax]."""
    from torch.distributed.tensor import Replicate, Shard

    padded = blocks_of(_max_shard_numel(p))
    if local.numel() > padded:
        raise RuntimeError(f"internal error: a shard has {local.numel()} blocks of 8-bit state, more than the "
                           f"{padded} its parameter's largest shard can have")
    part = torch.zeros(padded, dtype=local.dtype)
    part[:local.numel()] = local
    placements = [Shard(0) if pl.is_shard() else Replicate() for pl in p.placements]
    shards = math.prod(p.device_mesh.size(d) for d, pl in enumerate(p.placements) if pl.is_shard())
    return dtensor_class().from_local(part, p.device_mesh, placements, run_check=False, shape=(padded * shards,),
                                      stride=(1,))
