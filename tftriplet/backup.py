"""The files of a `tftriplet.BackupAndRestore` backup, written so that a kill at any moment
leaves a whole backup behind.

The layout of `backup_dir`:

    latest.json                        {"format": ..., "generation": 7, "previous": null}
    generation-7/model.weights.h5      the model's weights and optimizer state
    generation-7/state.npz             "meta" (JSON text) and the arrays of the state pieces

A backup is written into a new generation folder; `latest.json` is then replaced
atomically (written to a temporary file, flushed to disk, renamed over the old one), so it
always names a complete generation, and the older folders are removed afterwards. Reading
refuses, with a `BackupError` that names the directory and the problem, a pointer or file
that is missing, truncated or unreadable.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np

FORMAT = "tftriplet-backup/1"
POINTER = "latest.json"
WEIGHTS = "model.weights.h5"
STATE = "state.npz"
#: The files keras.callbacks.BackupAndRestore writes (to recognise its backups).
KERAS_FILES = ("latest.weights.h5", "training_metadata.json")


class BackupError(ValueError):
    """A backup that cannot be restored: corrupt, partial, or from another configuration."""


class _Unreadable(Exception):
    """A generation whose files are missing or unreadable (another one may still do)."""


def _fsync(path, directory=False):
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:  # a platform that cannot open a folder
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _generations(directory):
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(
        int(name.split("-", 1)[1])
        for name in names
        if name.startswith("generation-") and name.split("-", 1)[1].isdigit()
    )


def _folder(directory, generation):
    return os.path.join(directory, f"generation-{generation}")


def write(directory, model, meta, arrays, keep_previous=False):
    """Write a new generation (weights, `meta` and `arrays`) and point to it."""
    os.makedirs(directory, exist_ok=True)
    pointer = _read_pointer(directory, missing_ok=True, quiet=True)
    generation = max(_generations(directory), default=0) + 1
    folder = _folder(directory, generation)
    os.makedirs(folder)
    model.save_weights(os.path.join(folder, WEIGHTS))
    _fsync(os.path.join(folder, WEIGHTS))
    names = {key: f"a{i}" for i, key in enumerate(arrays)}
    meta = {**meta, "format": FORMAT, "arrays": names}
    with open(os.path.join(folder, STATE), "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **{names[k]: v for k, v in arrays.items()})
        f.flush()
        os.fsync(f.fileno())
    _fsync(folder, directory=True)
    previous = pointer["generation"] if keep_previous and pointer else None
    temporary = os.path.join(directory, POINTER + ".tmp")
    with open(temporary, "w") as f:
        json.dump({"format": FORMAT, "generation": generation, "previous": previous}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, os.path.join(directory, POINTER))
    _fsync(directory, directory=True)
    for old in _generations(directory):
        if old not in (generation, previous):
            shutil.rmtree(_folder(directory, old), ignore_errors=True)


def _read_pointer(directory, missing_ok=False, quiet=False):
    path = os.path.join(directory, POINTER)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            pointer = json.load(f)
        if pointer.get("format") != FORMAT or not isinstance(pointer.get("generation"), int):
            raise ValueError(f"not a {FORMAT} pointer: {pointer!r}")
    except (OSError, ValueError, AttributeError) as e:
        if quiet:
            return None
        raise BackupError(_problem(directory, f"{POINTER} is unreadable ({e})")) from e
    return pointer


def _problem(directory, what):
    return (
        f"cannot restore the backup in {directory!r}: {what}. It is corrupt or was left "
        "partial; delete the directory to train from the start."
    )


def exists(directory):
    """Whether `directory` holds a backup to restore (raises for one it cannot read)."""
    if _read_pointer(directory) is not None:
        return True
    keras_files = [n for n in KERAS_FILES if os.path.exists(os.path.join(directory, n))]
    if keras_files:
        raise BackupError(
            f"{directory!r} holds a backup of keras.callbacks.BackupAndRestore "
            f"({', '.join(keras_files)}), not of tftriplet.BackupAndRestore: it has no sampler "
            "position to resume from. Delete it, or give tftriplet.BackupAndRestore another "
            "directory."
        )
    return False


def _read_state(folder):
    path = os.path.join(folder, STATE)
    if not os.path.isdir(folder):
        raise _Unreadable(f"its folder {os.path.basename(folder)} is missing")
    for name in (WEIGHTS, STATE):
        if not os.path.isfile(os.path.join(folder, name)):
            raise _Unreadable(f"{os.path.basename(folder)}/{name} is missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            arrays = {key: data[name] for key, name in meta["arrays"].items()}
    except Exception as e:  # zip, npy and JSON errors of a damaged file
        raise _Unreadable(f"{os.path.basename(folder)}/{STATE} is unreadable ({e})") from e
    return meta, arrays


def _load_weights(model, folder):
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist to load
    try:
        model.load_weights(os.path.join(folder, WEIGHTS))
    except Exception as e:  # h5py's OSError on a damaged file, Keras' ValueError on another model
        raise _Unreadable(
            f"{os.path.basename(folder)}/{WEIGHTS} cannot be loaded into this model ({e})"
        ) from e


def restore(directory, model, check_meta, check_model):
    """Load the latest generation (or, when it is unreadable, the previous one kept by
    `keep_previous`) into `model`; return its `(meta, arrays)`.

    `check_meta(meta)` runs before the weights are loaded and raises for a backup of
    another configuration; `check_model(meta)` runs after and raises `_Unreadable` (via
    `unreadable`) for weights that do not belong to `meta`.
    """
    pointer = _read_pointer(directory)
    generations = [pointer["generation"]]
    if isinstance(pointer.get("previous"), int):
        generations.append(pointer["previous"])
    problems = []
    for generation in generations:
        folder = _folder(directory, generation)
        try:
            meta, arrays = _read_state(folder)
            check_meta(meta)
            _load_weights(model, folder)
            check_model(meta)
        except _Unreadable as e:
            problems.append(str(e))
            continue
        if problems:
            warnings.warn(
                f"the latest backup in {directory!r} is unreadable ({problems[0]}); restored "
                f"the previous one, generation {generation}.",
                stacklevel=3,
            )
        return meta, arrays
    raise BackupError(_problem(directory, "; ".join(problems)))


def unreadable(what):
    """The exception `restore`'s `check_model` raises for a generation it rejects."""
    return _Unreadable(what)


def delete(directory):
    shutil.rmtree(directory, ignore_errors=True)
