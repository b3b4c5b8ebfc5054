"""``SequenceChunker``: cut the lock-step streams of K simulators into ``SequenceChunk`` s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recore_dist.data.chunk import (
    FIELD_NAME_RE,
    FLAG_FIELDS,
    MAX_LENGTH,
    RESERVED_FIELDS,
    SPLITS,
    SequenceChunk,
)

POISON_BYTE = 0xAB


class SequenceChunker:
    """Buffers one row per simulator per ``add`` and emits a chunk per simulator every T rows.

    The K simulators are stepped in lock-step, so all K buffers fill at the same ``add`` call,
    which returns K chunks (``env_index`` 0..K-1, ``seq`` counting 0, 1, 2, ... per env).
    Chunks cross episode boundaries freely; ``is_first`` marks resets. Row ``t`` follows the
    ``SequenceChunk`` convention: the caller passes ``obs_t`` (with its flags), the reward that
    arrived with it, and the action the policy chose at it.

    Per-chunk metadata:

    - ``policy_version`` is the *minimum* version over the chunk's rows (the oldest policy that
      contributed an action), so staleness is never under-reported.
    - ``intervention_id`` and ``split`` are those of the chunk's *last* row.

    With ``overlap > 0`` the last ``overlap`` rows of each chunk are also the first rows of the
    next one (their versions count towards its minimum too).

    Buffers are preallocated as ``[K, T, ...]`` arrays per field; an emitted chunk's arrays are
    views ``buffer[k]`` (contiguous) of the finished buffers, and fresh buffers are allocated for
    the next chunk, so no row is copied twice. With ``debug=True`` fresh buffers are poisoned
    (NaN for floats, bytes ``0xAB`` otherwise) so reads of unwritten rows stand out.
    """

    def __init__(
        self,
        num_envs: int,
        length: int = 64,
        *,
        env_name: str,
        runner_id: int = 0,
        overlap: int = 0,
        debug: bool = False,
        seq_start: int = 0,
    ) -> None:
        """Create a chunker.

        Args:
            num_envs: K, the number of simulators stepped in lock-step (>= 1).
            length: T, rows per chunk, in [1, MAX_LENGTH].
            env_name: Environment id stamped on every chunk.
            runner_id: Runner id stamped on every chunk (>= 0).
            overlap: Rows carried over from one chunk to the next, in [0, T).
            seq_start: ``seq`` of each env's first chunk. A runner that restarts starts above
                its previous incarnation's (``EnvRunner``: the start time in microseconds), so
                the replay service can refuse duplicate sequence numbers.
            debug: Poison fresh buffers.
        """
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if not isinstance(length, int) or not 1 <= length <= MAX_LENGTH:
            raise ValueError(f"length must be an int in [1, {MAX_LENGTH}], got {length!r}")
        if not isinstance(overlap, int) or not 0 <= overlap < length:
            raise ValueError(f"overlap must be an int in [0, length={length}), got {overlap!r}")
        if not isinstance(env_name, str) or not env_name:
            raise ValueError(f"env_name must be a non-empty str, got {env_name!r}")
        if not isinstance(runner_id, int) or runner_id < 0:
            raise ValueError(f"runner_id must be an int >= 0, got {runner_id!r}")
        self.num_envs, self.length, self.overlap = num_envs, length, overlap
        self.env_name, self.runner_id, self.debug = env_name, runner_id, debug
        self._spec: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._buffers: dict[str, np.ndarray] = {}
        self._versions = np.zeros(length, np.int64)
        self._pos = 0
        if not isinstance(seq_start, int) or seq_start < 0:
            raise ValueError(f"seq_start must be an int >= 0, got {seq_start!r}")
        self._seq = [seq_start] * num_envs

    @property
    def pending_rows(self) -> int:
        """Rows buffered towards the next chunk (the same for every env)."""
        return self._pos

    def add(
        self,
        obs: Mapping[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        policy_version: int,
        intervention_ids: Sequence[str],
        splits: Sequence[str],
    ) -> list[SequenceChunk]:
        """Append row ``t`` for every env; return the chunks completed by it.

        Args:
            obs: ``[K, ...]`` arrays: the observation fields plus the ``is_first``,
                ``is_last`` and ``is_terminal`` flags as ``[K]`` bool arrays. The set of keys,
                trailing shapes and dtypes are fixed by the first call.
            action: ``[K, A]`` actions chosen at ``obs`` (cast to float32).
            reward: ``[K]`` rewards that arrived with ``obs`` (cast to float32).
            policy_version: Version of the policy that chose ``action`` (>= 0).
            intervention_ids: K intervention ids, one per env.
            splits: K splits (``"train"`` / ``"heldout"``), one per env.

        Returns:
            Either ``[]`` or K chunks (one per env, in env order) when the buffers are full.

        Raises:
            ValueError: If an input has the wrong keys, shape, dtype or value.
        """
        rows = self._rows(obs, action, reward)
        self._check_meta(policy_version, intervention_ids, splits)
        if self._spec is None:
            self._spec = {name: (row.shape[1:], row.dtype) for name, row in rows.items()}
            self._buffers = self._allocate()
        self._check_spec(rows)
        for name, row in rows.items():
            self._buffers[name][:, self._pos] = row
        self._versions[self._pos] = policy_version
        self._pos += 1
        if self._pos < self.length:
            return []
        return self._emit(list(intervention_ids), list(splits))

    def _rows(
        self, obs: Mapping[str, np.ndarray], action: np.ndarray, reward: np.ndarray
    ) -> dict[str, np.ndarray]:
        """All per-row inputs as ``[K, ...]`` arrays keyed by their chunk field name."""
        k = self.num_envs
        missing = [name for name in FLAG_FIELDS if name not in obs]
        if missing:
            raise ValueError(f"obs is missing flags {missing}; got keys {sorted(obs)}")
        rows: dict[str, np.ndarray] = {}
        for name, value in obs.items():
            if name not in FLAG_FIELDS:
                if not isinstance(name, str) or not FIELD_NAME_RE.match(name) or name in RESERVED_FIELDS:
                    raise ValueError(
                        f"obs key {name!r} is reserved or does not match {FIELD_NAME_RE.pattern}"
                    )
                rows[name] = np.asarray(value)
        if not rows:
            raise ValueError(f"obs has no observation field besides the flags; got keys {sorted(obs)}")
        rows["action"] = np.asarray(action, dtype=np.float32)
        rows["reward"] = np.asarray(reward, dtype=np.float32)
        for name in FLAG_FIELDS:
            rows[name] = np.asarray(obs[name])
            flag = rows[name]
            if flag.dtype != np.bool_ or flag.shape != (k,):
                raise ValueError(f"obs[{name!r}] must be bool [{k}], got {flag.dtype} {flag.shape}")
        if rows["action"].ndim != 2 or rows["reward"].shape != (k,):
            raise ValueError(
                f"action must be [{k}, A] and reward [{k}], got {rows['action'].shape}, {rows['reward'].shape}"
            )
        for name, row in rows.items():
            if row.ndim < 1 or row.shape[0] != k:
                raise ValueError(f"{name!r}: leading dim must be num_envs={k}, got shape {row.shape}")
        return rows

    def _check_meta(self, policy_version: int, intervention_ids: Sequence[str], splits: Sequence[str]) -> None:
        """Version >= 0, one intervention id (str) and one known split per env."""
        is_int = isinstance(policy_version, (int, np.integer)) and not isinstance(policy_version, bool)
        if not is_int or policy_version < 0:
            raise ValueError(f"policy_version must be an int >= 0, got {policy_version!r}")
        if len(intervention_ids) != self.num_envs or not all(isinstance(i, str) for i in intervention_ids):
            raise ValueError(f"intervention_ids must be {self.num_envs} strs, got {intervention_ids!r}")
        if len(splits) != self.num_envs or any(s not in SPLITS for s in splits):
            raise ValueError(f"splits must be {self.num_envs} of {list(SPLITS)}, got {splits!r}")

    def _check_spec(self, rows: dict[str, np.ndarray]) -> None:
        """Keys, trailing shapes and dtypes must match the first call's."""
        assert self._spec is not None
        if list(rows) != list(self._spec):
            raise ValueError(f"fields changed: first call had {list(self._spec)}, now {list(rows)}")
        for name, row in rows.items():
            shape, dtype = self._spec[name]
            if row.shape[1:] != shape or row.dtype != dtype:
                raise ValueError(
                    f"{name!r}: expected per-env shape {shape} dtype {dtype}, got {row.shape[1:]} {row.dtype}"
                )

    def _allocate(self) -> dict[str, np.ndarray]:
        """Fresh ``[K, T, ...]`` buffers (poisoned in debug mode)."""
        assert self._spec is not None
        buffers = {}
        for name, (shape, dtype) in self._spec.items():
            buf = np.empty((self.num_envs, self.length, *shape), dtype)
            if self.debug and dtype.kind == "f":
                buf.fill(np.nan)
            elif self.debug:
                buf.view(np.uint8).fill(POISON_BYTE)
            buffers[name] = buf
        return buffers

    def _emit(self, intervention_ids: list[str], splits: list[str]) -> list[SequenceChunk]:
        """Hand the full buffers to K chunks; start new buffers (carrying ``overlap`` rows)."""
        full, version = self._buffers, int(self._versions.min())
        obs_names = [name for name in full if name not in RESERVED_FIELDS]
        chunks = []
        for k in range(self.num_envs):
            chunks.append(SequenceChunk(
                obs={name: full[name][k] for name in obs_names},
                action=full["action"][k], reward=full["reward"][k], is_first=full["is_first"][k],
                is_last=full["is_last"][k], is_terminal=full["is_terminal"][k],
                policy_version=version, env_name=self.env_name, intervention_id=intervention_ids[k],
                split=splits[k],  # type: ignore[arg-type]
                runner_id=self.runner_id, seq=self._seq[k], env_index=k,
            ))
            self._seq[k] += 1
        self._buffers = self._allocate()
        keep = self.overlap
        if keep:
            for name, buf in self._buffers.items():
                buf[:, :keep] = full[name][:, self.length - keep:]
            self._versions[:keep] = self._versions[self.length - keep:].copy()
        self._pos = keep
        return chunks
