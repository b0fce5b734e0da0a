"""``tftriplet demo --tensorboard DIR``: the per-epoch retrieval metrics from the callback,
the event files, and the embedding projector's files, read back as TensorBoard reads them."""

import os

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
tf = pytest.importorskip("tensorflow")

from tftriplet.retrieval import retrieval_metrics  # noqa: E402
from tftriplet_cli import demo  # noqa: E402

EPOCHS = 2


def clusters_npz(path, classes=6, per_class=30, seed=0):
    """Gaussian clusters in 10-D, saved as the demo's --data archive."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, 10))
    y = np.repeat(np.arange(classes), per_class)
    np.savez(path, x=centres[y] + rng.normal(size=(len(y), 10)), y=y)
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pytest.importorskip(
        "tensorboard", reason="keras.callbacks.TensorBoard needs the tensorboard package"
    )
    tmp = tmp_path_factory.mktemp("tb")
    data = clusters_npz(tmp / "mine.npz")
    logs = tmp / "logs"
    results = demo.run_demo(
        out=str(tmp / "out"),
        data=data,
        epochs=EPOCHS,
        tensorboard=str(logs),
        verbose=0,
        print_fn=lambda *a: None,
    )
    return logs, results


def projector_config_class():
    """TensorBoard's ProjectorConfig message; without the tensorboard package, built from
    its projector_config.proto (same names and field numbers), so the file is parsed as the
    projector parses it (text_format)."""
    try:
        from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

        return ProjectorConfig
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(
        name="projector_config_test.proto", package="tensorboard.projector", syntax="proto3"
    )
    field = descriptor_pb2.FieldDescriptorProto
    info = fdp.message_type.add(name="EmbeddingInfo")
    for name, number, kind, label in (
        ("tensor_name", 1, field.TYPE_STRING, field.LABEL_OPTIONAL),
        ("metadata_path", 2, field.TYPE_STRING, field.LABEL_OPTIONAL),
        ("bookmarks_path", 3, field.TYPE_STRING, field.LABEL_OPTIONAL),
        ("tensor_shape", 4, field.TYPE_UINT32, field.LABEL_REPEATED),
        ("tensor_path", 6, field.TYPE_STRING, field.LABEL_OPTIONAL),
    ):
        info.field.add(name=name, number=number, type=kind, label=label)
    config = fdp.message_type.add(name="ProjectorConfig")
    config.field.add(
        name="model_checkpoint_path", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL
    )
    config.field.add(
        name="embeddings",
        number=2,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".tensorboard.projector.EmbeddingInfo",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorboard.projector.ProjectorConfig")
    )


def scalars(run_dir):
    """{tag: [value per step]} from the event files of one run folder."""
    values = {}
    for name in sorted(os.listdir(run_dir)):
        if not name.startswith("events.out.tfevents"):
            continue
        for event in tf.compat.v1.train.summary_iterator(os.path.join(run_dir, name)):
            for value in event.summary.value:
                if not value.tag.startswith("epoch_"):  # the model's config, as text
                    continue
                number = (
                    float(tf.make_ndarray(value.tensor))
                    if value.HasField("tensor")
                    else value.simple_value
                )
                values.setdefault(value.tag, []).append((event.step, number))
    return {tag: [v for _, v in sorted(pairs)] for tag, pairs in values.items()}


def test_history_holds_the_callbacks_retrieval_metrics_per_epoch(run):
    _, results = run
    history = results["history"]
    for key in ("val_recall@1", "val_recall@5", "val_map@r"):
        assert len(history[key]) == EPOCHS
    # The "after" row is the last epoch's evaluation.
    assert history["val_recall@1"][-1] == pytest.approx(results["after"]["recall@1"])
    assert history["val_map@r"][-1] == pytest.approx(results["after"]["map@r"])


def test_event_files_hold_the_training_curves_and_retrieval_metrics(run):
    logs, results = run
    history = results["history"]
    train = scalars(logs / "train")
    validation = scalars(logs / "validation")
    assert train["epoch_loss"] == pytest.approx(history["loss"], rel=1e-6)
    assert train["epoch_fraction_positive"] == pytest.approx(history["fraction_positive"], rel=1e-6)
    for key in ("recall@1", "recall@5", "map@r"):
        assert validation[f"epoch_{key}"] == pytest.approx(history[f"val_{key}"], rel=1e-6)


def read_projector(run_dir):
    """The config and, per embedding, its tensor and labels, resolved as the projector
    does: paths relative to the config's folder; a one-column metadata file has no header."""
    from google.protobuf import text_format

    text = (run_dir / "projector_config.pbtxt").read_text()
    config = text_format.Parse(text, projector_config_class()())
    tensors = {}
    for embedding in config.embeddings:
        tensor = np.loadtxt(run_dir / embedding.tensor_path, delimiter="\t", ndmin=2)
        metadata = (run_dir / embedding.metadata_path).read_text().splitlines()
        assert "\t" not in metadata[0]  # one column: no header row
        assert list(embedding.tensor_shape) == list(tensor.shape)
        tensors[embedding.tensor_name] = (tensor, np.array([int(v) for v in metadata]))
    return config, tensors


def test_write_projector_round_trips_float32_embeddings_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 3)).astype(np.float32)
    b = rng.normal(size=(7, 3)).astype(np.float32) * 1e-7
    labels = np.array([3, 1, 4, 1, 5, 9, 2])
    path = demo.write_projector(str(tmp_path), {"a": a, "b": b}, labels)
    assert path == str(tmp_path / "projector_config.pbtxt")
    config, tensors = read_projector(tmp_path)
    assert config.model_checkpoint_path == ""  # the TSV files, no checkpoint
    assert list(tensors) == ["a", "b"]
    for name, values in (("a", a), ("b", b)):
        np.testing.assert_array_equal(tensors[name][0].astype(np.float32), values)
        np.testing.assert_array_equal(tensors[name][1], labels)
    with pytest.raises(ValueError, match="N=7"):
        demo.write_projector(str(tmp_path), {"c": a[:3]}, labels)


def test_projector_files_are_present_and_readable(run):
    logs, results = run
    run_dir = logs / "validation"  # a run folder: TensorBoard reads its config there
    assert results["files"]["projector_config"] == str(run_dir / "projector_config.pbtxt")
    config, tensors = read_projector(run_dir)
    assert list(tensors) == ["held_out_after_training", "held_out_before_training"]
    for tensor, _ in tensors.values():
        assert tensor.shape == (results["split"]["test_samples"], 32)
    # The after-training TSV reproduces the reported retrieval numbers.
    after, labels = tensors["held_out_after_training"]
    recomputed = retrieval_metrics(after, labels, ks=(1, 5))
    for key in ("recall@1", "recall@5", "map@r"):
        assert recomputed[key] == pytest.approx(results["after"][key], abs=1e-9)
    assert sorted(set(labels.tolist())) == results["split"]["test_classes"]


def test_tensorboard_without_the_package_is_refused_with_the_fix(tmp_path, monkeypatch):
    real = demo.tensorboard_logs.importlib.util.find_spec
    monkeypatch.setattr(
        demo.tensorboard_logs.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    with pytest.raises(demo.DemoError, match="pip install tensorboard"):
        demo.run_demo(out=str(tmp_path), tensorboard=str(tmp_path / "tb"), print_fn=print)


def test_tensorboard_sees_the_projector_config_in_a_run_folder(run):
    # The projector reads projector_config.pbtxt in each run folder TensorBoard finds (the
    # log folder itself only when it has none): check the config's folder is such a run.
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    logs, _ = run
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logs))
    run_paths = {name: os.path.abspath(path) for name, path in multiplexer.RunPaths().items()}
    assert run_paths["validation"] == os.path.abspath(logs / "validation")
    assert (logs / "validation" / "projector_config.pbtxt").is_file()
