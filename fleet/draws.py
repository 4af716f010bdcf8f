"""The simulator's random numbers, drawn per block of steps so that chunking does not matter.

Every block of BLOCK steps has its own generator keyed by (seed, 2, block): the normals
(AR innovations and white noise), the uniforms of the state machine and, for aggregated
rows, the sub-tick noise of fleet.ticks. advance(a) then advance(b) therefore gives the
rows of advance(a + b), and a live feed and a corpus of one seed see the same fleet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fleet import Array
from fleet.noise import MEM_FAST, N_AR, N_WHITE
from fleet.ticks import subtick_white

# random numbers are drawn per block of this many steps, keyed by (seed, block): a fixed
# count (a day of 5-minute steps), not derived from the step length, as every seed's draws
# depend on it
BLOCK = 288
U_EVENT, U_KIND, U_HOURS, U_BRANCH = range(4)  # uniform draws per (step, server)
# AR channels from MEM_FAST on are drawn after the others, so that adding them left the
# other channels' draws and the incidents of every seed unchanged
EARLY_AR = MEM_FAST


def keyed_rng(*key: int) -> np.random.Generator:
    """A generator seeded by a key of integers, e.g. (seed, stream, block)."""
    return np.random.default_rng(list(key))


class BlockDraws:
    """The random numbers of n_servers per step, block by block; the last block is cached.

    sub: (ticks per step, sub-ticks per step) of fleet.ticks.subticks; (1, 1) draws no
    sub-tick noise.
    """

    def __init__(self, seed: int, n_servers: int, sub: tuple[int, int]) -> None:
        self.seed, self.n_servers, self.sub = seed, n_servers, sub
        self._cache: tuple[Any, ...] = (-1,)

    def draws(self, g0: int, k_steps: int) -> tuple[Array, ...]:
        """(K, n, channels) normals and uniforms, and without sub-ticks None, else the
        (K, S, n, N_WHITE) sub-tick white noise and (K, n, N_AR) bridge normals; drawn per
        block keyed by (seed, block)."""
        last = (g0 + max(k_steps, 1) - 1) // BLOCK
        blocks = [self._block(b) for b in range(g0 // BLOCK, last + 1)]
        cut = slice(g0 % BLOCK, g0 % BLOCK + k_steps)
        normals, uniforms = (np.concatenate([b[j] for b in blocks])[cut] for j in (0, 1))
        if self.sub[0] == 1:
            return normals, uniforms, None
        sub = tuple(np.concatenate([b[2][j] for b in blocks])[cut] for j in (0, 1))
        return normals, uniforms, sub

    def _block(self, block: int) -> tuple[Array, ...]:
        if self._cache[0] != block:
            rng, n = keyed_rng(self.seed, 2, block), self.n_servers
            normals = rng.standard_normal((BLOCK, n, EARLY_AR + N_WHITE))
            uniforms = rng.random((BLOCK, n, 4))
            sub = None
            if self.sub[0] > 1:
                bridge = rng.standard_normal((BLOCK, n, EARLY_AR))
                sub = (subtick_white(rng, (BLOCK, n), *self.sub), bridge)
            late = rng.standard_normal((2, BLOCK, n, N_AR - EARLY_AR))  # innovations, bridge
            normals = np.insert(normals, [EARLY_AR], late[0], axis=2)
            if sub is not None:
                sub = (sub[0], np.concatenate([sub[1], late[1]], axis=2))
            self._cache = (block, normals, uniforms, sub)
        return self._cache[1:]
