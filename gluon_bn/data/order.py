"""The epoch order of the input pipelines and its state: `EpochShuffleSampler`.

Both pipelines (:mod:`gluon_bn.data.pipelines`) draw each epoch's order from
``numpy.random.default_rng(seed)``, created once per iterator, with one
``rng.permutation(n)`` per pass (``__iter__`` call). Where that stream stands is the
iterators' only state: ``state_dict()`` returns it as JSON-serialisable data and
``load_state_dict(state)`` restores it (checkpoints use these to resume exactly). The format
(`ORDER_STATE_KIND`) is the same for the sampler and both iterators.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Optional

import numpy as np

from gluon_bn.runtime.loader import mx

__all__ = ["ORDER_STATE_KIND", "EpochShuffleSampler"]


# What `state_dict` returns, for every iterator and sampler of gluon_bn.data:
#   {"kind": ORDER_STATE_KIND, "version": 1, "shuffle": bool, "num_examples": int,
#    "seed": int or None, "bit_generator": numpy bit_generator.state (a dict) or None}
ORDER_STATE_KIND = "gluon_bn.data.epoch_order"
_ORDER_STATE_VERSION = 1


def _order_state(
    num_examples: int, seed: Optional[int], rng: Optional[np.random.Generator]
) -> dict:
    """The state dict of an epoch order: shuffled by `rng`, or file order if it is None."""
    shuffle = rng is not None
    return {
        "kind": ORDER_STATE_KIND,
        "version": _ORDER_STATE_VERSION,
        "shuffle": shuffle,
        "num_examples": num_examples,
        "seed": seed if shuffle else None,
        "bit_generator": rng.bit_generator.state if shuffle else None,
    }


def _describe_order(state: Mapping) -> str:
    """E.g. "50 examples shuffled with seed 3", for error messages."""
    if not state.get("shuffle"):
        return f"{state.get('num_examples')!r} examples in file order"
    return f"{state.get('num_examples')!r} examples shuffled with seed {state.get('seed')!r}"


def _check_order_state(state, mine: dict, owner: str) -> None:
    """Raise ValueError unless `state` can replace `mine`, the `owner`'s own state dict.

    A shuffled state's ``bit_generator`` is tried on a fresh bit generator of the owner's
    type, so that a bad one is found before anything of the owner's is changed.
    """
    where = f"{owner}.load_state_dict"
    if not isinstance(state, Mapping) or state.get("kind") != ORDER_STATE_KIND:
        if not isinstance(state, Mapping):
            got = f"a {type(state).__name__}"
        elif "kind" in state:
            got = f"a dict of kind {state['kind']!r}"
        else:
            got = f"a dict without 'kind' (keys {sorted(map(str, state))})"
        raise ValueError(
            f"{where} expects what {owner}.state_dict() returns (a dict with "
            f"kind {ORDER_STATE_KIND!r}), got {got}"
        )
    if state.get("version") != _ORDER_STATE_VERSION:
        raise ValueError(
            f"{where}: unknown state version {state.get('version')!r}, "
            f"expected {_ORDER_STATE_VERSION}"
        )
    if any(state.get(key) != mine[key] for key in ("shuffle", "num_examples", "seed")):
        raise ValueError(
            f"{where}: the state is of another data set, seed or order: "
            f"{_describe_order(state)}, but this {owner} has "
            f"{_describe_order(mine)}"
        )
    if not mine["shuffle"]:
        return
    kind = mine["bit_generator"]["bit_generator"]  # e.g. "PCG64"
    saved, probe = state.get("bit_generator"), getattr(np.random, kind)()
    try:
        probe.state = saved
    except (TypeError, ValueError, LookupError, OverflowError) as err:
        problem = f"{type(err).__name__}: {err}"
    else:  # numpy wraps some out-of-range numbers (a negative state, say) instead of failing
        problem = None if probe.state == saved else "its numbers do not read back as given"
    if problem is not None:
        raise ValueError(
            f"{where}: the state's bit_generator is not a valid {kind} state ({problem})"
        )


class EpochShuffleSampler(mx.gluon.data.Sampler):
    """Gluon sampler that yields a new permutation of ``range(length)`` on every pass.

    The permutations come from one ``numpy.random.default_rng(seed)`` created here, one
    ``rng.permutation(length)`` per ``__iter__`` call, the same stream `FastBatchIterator`
    uses.

    Parameters
    ----------
    length : int
        Number of examples.
    seed : int
        Seed of the generator.
    """

    def __init__(self, length: int, seed: int) -> None:
        self._length = length
        self._seed = None if seed is None else int(seed)
        self._rng = np.random.default_rng(seed)

    def epoch_order(self) -> np.ndarray:
        """Draw the next pass's order: int64 permutation of shape (length,)."""
        return self._rng.permutation(self._length)

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_order().tolist())

    def __len__(self) -> int:
        return self._length

    def state_dict(self) -> dict:
        """Return where the permutation stream stands, as JSON-serialisable data.

        Returns
        -------
        dict
            ``{"kind": ORDER_STATE_KIND, "version": 1, "shuffle": True, "num_examples":
            length, "seed": seed, "bit_generator": rng.bit_generator.state}``; the
            generator state is numpy's own (a dict of str and int), copied.
        """
        return _order_state(self._length, self._seed, self._rng)

    def load_state_dict(self, state: dict) -> None:
        """Continue the permutation stream from `state`, as returned by `state_dict`.

        Parameters
        ----------
        state : dict
            A state of a sampler or shuffled iterator over the same number of examples
            with the same seed (possibly after a JSON round trip).

        Raises
        ------
        ValueError
            If `state` is not such a state, is for another length or seed, or its
            generator state is not one of this generator's type. Nothing is changed then.
        """
        _check_order_state(state, self.state_dict(), type(self).__name__)
        self._rng.bit_generator.state = state["bit_generator"]


class _OrderStateMixin:
    """`state_dict` / `load_state_dict` of an iterator whose order is ``self._sampler``'s."""

    num_examples: int
    _sampler: Optional[EpochShuffleSampler]  # None: file order, nothing to save

    def state_dict(self) -> dict:
        """Return the state of the epoch order (the shuffling), as JSON-serialisable data.

        Only the stream of epoch orders is state, not a pass in progress: loaded before a
        pass, the state makes this iterator's next pass the one the original makes next.

        Returns
        -------
        dict
            ``{"kind": ORDER_STATE_KIND, "version": 1, "shuffle": bool, "num_examples":
            int, "seed": int or None, "bit_generator": dict or None}``: for a shuffling
            iterator the seed and numpy's ``bit_generator.state`` of its permutation
            generator (a dict of str and int), for a file-order one None and None. The
            format is the same for both pipelines, so either can load the other's state.
        """
        if self._sampler is None:
            return _order_state(self.num_examples, None, None)
        return self._sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Set the epoch order to `state`, as returned by `state_dict`.

        Parameters
        ----------
        state : dict
            A state of an iterator over the same number of examples, shuffling with the
            same seed or keeping file order as this one does (possibly after a JSON round
            trip).

        Raises
        ------
        ValueError
            If `state` is not an iterator state, is for another number of examples, seed
            or kind of order, or holds a broken generator state. Nothing is changed then.
        """
        _check_order_state(state, self.state_dict(), type(self).__name__)
        if self._sampler is not None:
            self._sampler.load_state_dict(state)
