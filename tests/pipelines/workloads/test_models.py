"""The model workloads: real training steps, their input forms and their errors.

Batches are tiny so that the CPU runs them in a few seconds; weights are never downloaded
(``weights=None`` throughout the module).
"""

import copy
import json

import pytest
import torch

from feedbench.pipelines.core.errors import BatchError, ConfigError
from feedbench.pipelines.core.stats import LoaderStats
from feedbench.pipelines.workloads import parse_workload
from feedbench.pipelines.workloads.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_CLASSES,
    MIN_CLASSES,
    MIN_VOCAB_SIZE,
    ResNet18,
    ResNet50,
    TextClassifier,
)

CPU = torch.device("cpu")


def _images_uint8(n, size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)


def _normalized(images_uint8):
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images_uint8.float() / 255 - mean) / std


def _resnet(cls=ResNet18, seed=0, **kwargs):
    torch.manual_seed(seed)
    workload = cls(**kwargs)
    workload.setup(CPU)
    return workload


def _text_batch(batch=4, seq_len=16, seed=0, classes=2):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, seq_len + 1, (batch,), generator=generator)
    token_ids = torch.randint(1, 1000, (batch, seq_len), generator=generator)
    token_ids[torch.arange(seq_len) >= lengths.unsqueeze(1)] = 0  # padding, as the pipelines pad
    labels = torch.arange(batch) % classes
    return token_ids, lengths, labels


def _text(seed=0, **kwargs):
    torch.manual_seed(seed)
    workload = TextClassifier(**kwargs)
    workload.setup(CPU)
    return workload


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "cls"), [("resnet18", ResNet18), ("ResNet50", ResNet50), ("textcls", TextClassifier)])
def test_parse_workload_builds_the_model_workloads_by_name(spec, cls):
    workload = parse_workload(spec)
    assert type(workload) is cls
    assert workload.describe() == spec.lower()


def test_defaults_match_the_names(tmp_path):
    assert ResNet18().num_classes == 1000 and ResNet50().num_classes == 1000
    text = TextClassifier()
    assert text.num_classes is None and text.vocab_size is None


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_num_classes_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
        ResNet18(num_classes=bad)
    with pytest.raises(ConfigError, match="vocab_size must be a positive integer"):
        TextClassifier(vocab_size=bad)


# --- ResNets -------------------------------------------------------------------------------


def test_resnet18_step_trains_the_parameters():
    workload = _resnet()
    assert next(workload.model.parameters()).dtype == torch.float32
    before = [p.detach().clone() for p in (workload.model.conv1.weight, workload.model.fc.weight)]
    workload.step((_normalized(_images_uint8(2, 64)), torch.tensor([3, 999])))
    after = (workload.model.conv1.weight, workload.model.fc.weight)
    assert all(not torch.equal(b, a) for b, a in zip(before, after))
    assert all(p.grad is None for p in workload.model.parameters())  # zero_grad(set_to_none=True)
    assert torch.isfinite(workload.last_loss)


def test_resnet50_step_trains_the_parameters():
    workload = _resnet(ResNet50)
    before = workload.model.layer4[-1].conv3.weight.detach().clone()
    workload.step((_images_uint8(2, 32), torch.tensor([0, 1])))
    assert not torch.equal(before, workload.model.layer4[-1].conv3.weight)


def test_resnet18_loss_decreases_on_a_fixed_batch():
    workload = _resnet(num_classes=10)
    batch = (_normalized(_images_uint8(8, 32)), torch.arange(8) % 10)
    losses = []
    for _ in range(6):
        workload.step(batch)
        losses.append(workload.last_loss.item())
    # SGD at lr 0.1 with momentum overshoots on 8 images, so the loss does not fall every
    # step; without training it would not fall at all.
    assert min(losses[1:]) < 0.5 * losses[0], losses


def test_uint8_images_give_the_loss_of_the_equivalent_normalized_floats():
    as_uint8 = _resnet()
    as_float = copy.deepcopy(as_uint8)
    images, labels = _images_uint8(2, 64), torch.tensor([5, 7])
    as_uint8.step((images, labels))
    as_float.step((_normalized(images), labels))
    torch.testing.assert_close(as_uint8.last_loss, as_float.last_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(as_uint8.model.fc.weight, as_float.model.fc.weight, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_channels_last_views_are_accepted_and_give_the_same_loss(dtype):
    contiguous = _resnet()
    strided = copy.deepcopy(contiguous)
    nhwc = _images_uint8(2, 64).permute(0, 2, 3, 1).contiguous()
    if dtype is torch.float32:
        nhwc = _normalized(nhwc.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()
    view = nhwc.permute(0, 3, 1, 2)  # NCHW shape, NHWC memory: what the tf adapter hands over
    assert view.shape == (2, 3, 64, 64) and not view.is_contiguous()
    assert view.is_contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([1, 2])
    strided.step((view, labels))
    contiguous.step((view.contiguous(), labels))
    torch.testing.assert_close(strided.last_loss, contiguous.last_loss, rtol=1e-4, atol=1e-4)


def test_resnet_warmup_runs_its_steps():
    workload = _resnet(num_classes=10)
    workload.warmup_steps = 2
    workload.warmup((_normalized(_images_uint8(2, 32)), torch.tensor([0, 9])))
    assert workload.optimizer.state[workload.model.fc.weight]["momentum_buffer"] is not None


@pytest.mark.parametrize("bad", [10, 12, -1])
def test_resnet_labels_out_of_range_are_named_with_the_limit(bad):
    workload = _resnet(num_classes=10)
    images = _normalized(_images_uint8(2, 32))
    with pytest.raises(BatchError,
                       match=rf"resnet18: label {bad} is out of range for num_classes=10 \(labels must be 0 to 9\)"):
        workload.warmup((images, torch.tensor([0, bad])))
    # On the CPU every step checks, not only the first batch's warm-up.
    with pytest.raises(BatchError, match=rf"label {bad} is out of range"):
        workload.step((images, torch.tensor([bad, 0])))


def test_default_resnet_accepts_label_999_and_names_1000():
    workload = _resnet()
    images = _normalized(_images_uint8(2, 32))
    workload.step((images, torch.tensor([0, 999])))
    with pytest.raises(BatchError, match=r"label 1000 is out of range for num_classes=1000"):
        workload.step((images, torch.tensor([0, 1000])))


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ((torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.int64), torch.zeros(2)), "got a batch of 3 tensors"),
        (torch.zeros(2, 3, 8, 8), r"got a float32 tensor of shape \[2, 3, 8, 8\]"),
        ({"image": torch.zeros(2, 3, 8, 8), "label": torch.zeros(2)}, r"got a dict with keys \['image', 'label'\]"),
        ((torch.zeros(2, 8, 8), torch.zeros(2, dtype=torch.int64)),
         r"got images as a float32 tensor of shape \[2, 8, 8\]"),
        ((torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64)),
         r"got images as a float32 tensor of shape \[2, 1, 8, 8\]"),
        ((torch.zeros(2, 8, 8, 3), torch.zeros(2, dtype=torch.int64)), r"shape \[2, 8, 8, 3\]"),
        ((torch.zeros(2, 3, 8, 8, dtype=torch.int32), torch.zeros(2, dtype=torch.int64)), "uint8 or float images"),
        ((torch.zeros(2, 3, 8, 8), torch.zeros(3, dtype=torch.int64)),
         r"got labels as a int64 tensor of shape \[3\] for 2 images"),
        ((torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.int32)), "int64 labels; got labels as a int32 tensor"),
        (("images", [0, 1]), r"got images as a str"),
        ((torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.int64)), "got an empty batch"),
    ],
)
def test_resnet_batches_of_the_wrong_form_say_what_was_expected(batch, message):
    workload = _resnet()
    expected = r"^resnet18 expects \(images \[B,3,H,W\], labels \[B\]\)"
    with pytest.raises(BatchError, match=expected) as raised:
        workload.step(batch)
    assert "\n" not in str(raised.value)
    with pytest.raises(BatchError, match=message):
        workload.warmup(batch)


def test_resnet_message_for_three_tensors_reads_in_full():
    workload = _resnet()
    batch = (torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.int64), torch.zeros(2))
    with pytest.raises(BatchError) as raised:
        workload.step(batch)
    assert str(raised.value) == "resnet18 expects (images [B,3,H,W], labels [B]); got a batch of 3 tensors"


# --- text classifier -----------------------------------------------------------------------


def test_textcls_step_trains_the_parameters():
    workload = _text(vocab_size=1000, num_classes=2)
    before = [p.detach().clone() for p in workload.model.parameters()]
    workload.step(_text_batch())
    assert all(not torch.equal(b, a) for b, a in zip(before, workload.model.parameters()))


def test_textcls_loss_decreases_over_twenty_steps():
    workload = _text(num_classes=2)
    batch = _text_batch(batch=8)
    workload.warmup(batch)
    losses = []
    for _ in range(20):
        workload.step(batch)
        losses.append(workload.last_loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(later <= earlier for earlier, later in zip(losses, losses[1:])), losses


def test_padding_beyond_the_lengths_does_not_change_the_logits():
    workload = _text(vocab_size=1000, num_classes=2)
    token_ids, lengths, _ = _text_batch()
    lengths = torch.tensor([3, 16, 1, 9])
    repadded = token_ids.clone()
    padded = torch.arange(16) >= lengths.unsqueeze(1)
    repadded[padded] = torch.randint(1, 1000, (int(padded.sum()),))
    assert not torch.equal(repadded, token_ids)
    with torch.no_grad():
        logits = workload.model(token_ids, lengths)
        assert torch.equal(logits, workload.model(repadded, lengths))
        # ...while a change inside a length does change them.
        changed = token_ids.clone()
        changed[0, 0] = (changed[0, 0] % 999) + 1
        assert not torch.equal(logits[0], workload.model(changed, lengths)[0])


def test_pooling_is_the_mean_of_the_valid_embeddings():
    workload = _text(vocab_size=100, num_classes=2)
    token_ids = torch.tensor([[5, 7, 0, 0]])
    with torch.no_grad():
        logits = workload.model(token_ids, torch.tensor([2]))
        mean = workload.model.embedding.weight[[5, 7]].mean(dim=0)
        torch.testing.assert_close(logits[0], workload.model.head(mean))


def test_a_zero_length_pools_to_zero_without_nan():
    workload = _text(vocab_size=1000, num_classes=2)
    token_ids, _, labels = _text_batch()
    lengths = torch.tensor([0, 5, 0, 16])
    with torch.no_grad():
        logits = workload.model(token_ids, lengths)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits[0], workload.model.head.bias)
    workload.step((token_ids, lengths, labels))
    assert torch.isfinite(workload.last_loss)
    assert all(torch.isfinite(p).all() for p in workload.model.parameters())


def test_vocabulary_is_sized_from_the_first_batch():
    small = _text()
    assert small.model is None
    small.warmup(_text_batch())
    assert small.vocab_size == MIN_VOCAB_SIZE == small.model.embedding.num_embeddings
    large = _text()
    token_ids, lengths, labels = _text_batch()
    token_ids[0, 0] = 40000
    lengths[0] = max(int(lengths[0]), 1)
    large.warmup((token_ids, lengths, labels))
    assert large.vocab_size == 65536
    edge = _text()
    token_ids[0, 0] = 65535  # the largest id a vocabulary of 65536 holds
    edge.warmup((token_ids, lengths, labels))
    assert edge.vocab_size == 65536


def test_a_later_id_beyond_the_sized_vocabulary_is_named():
    workload = _text()
    workload.warmup(_text_batch())
    token_ids, lengths, labels = _text_batch(seed=1)
    token_ids[1, 0] = MIN_VOCAB_SIZE
    with pytest.raises(BatchError, match=rf"token id {MIN_VOCAB_SIZE} is out of range for vocab_size={MIN_VOCAB_SIZE}"):
        workload.step((token_ids, lengths, labels))


def test_an_id_beyond_a_given_vocabulary_is_named_at_warmup():
    workload = _text(vocab_size=1000)
    token_ids, lengths, labels = _text_batch()  # ids 1 to 999
    token_ids[0, 0] = 1000
    with pytest.raises(BatchError, match=r"textcls: token id 1000 is out of range for vocab_size=1000"):
        workload.warmup((token_ids, lengths, labels))
    token_ids[0, 0] = -2
    with pytest.raises(BatchError, match=r"token id -2"):
        workload.step((token_ids, lengths, labels))


def test_textcls_labels_out_of_range_are_named_with_the_limit():
    workload = _text(num_classes=2)
    token_ids, lengths, _ = _text_batch()
    with pytest.raises(BatchError,
                       match=r"textcls: label 2 is out of range for num_classes=2 \(labels must be 0 to 1\)"):
        workload.warmup((token_ids, lengths, torch.tensor([0, 1, 2, 0])))
    wider = _text(num_classes=5)
    wider.warmup((token_ids, lengths, torch.tensor([0, 1, 2, 4])))
    with pytest.raises(BatchError, match=r"label 5 is out of range for num_classes=5"):
        wider.step((token_ids, lengths, torch.tensor([0, 5, 2, 4])))


def test_lengths_beyond_the_sequence_are_named():
    workload = _text(vocab_size=1000)
    token_ids, _, labels = _text_batch()
    with pytest.raises(BatchError, match=r"length 17 is out of range for token_ids of length 16"):
        workload.step((token_ids, torch.tensor([1, 17, 3, 4]), labels))


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ((torch.zeros(4, 16, dtype=torch.int64), torch.zeros(4, dtype=torch.int64)), "got a batch of 2 tensors"),
        ((torch.zeros(4, dtype=torch.int64),) * 3, r"got token_ids as a int64 tensor of shape \[4\]"),
        ((torch.zeros(4, 16), torch.zeros(4, dtype=torch.int64), torch.zeros(4, dtype=torch.int64)),
         "got token_ids as a float32"),
        (
            (torch.zeros(4, 16, dtype=torch.int64), torch.zeros(3, dtype=torch.int64),
             torch.zeros(4, dtype=torch.int64)),
            r"got lengths as a int64 tensor of shape \[3\] for 4 sequences",
        ),
        ((torch.zeros(4, 16, dtype=torch.int64), torch.zeros(4, dtype=torch.int64), None), "got labels as a NoneType"),
    ],
)
def test_text_batches_of_the_wrong_form_say_what_was_expected(batch, message):
    workload = _text()
    expected = r"^textcls expects \(token_ids \[B,T\], lengths \[B\], labels \[B\]\) of int64; "
    with pytest.raises(BatchError, match=expected + ".*" + message):
        workload.warmup(batch)


# --- CUDA (runs where a GPU is) ------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", [ResNet18, TextClassifier])
def test_cuda_steps_do_not_wait_for_the_device(cls):
    device = torch.device("cuda")
    workload = cls(num_classes=10)
    workload.setup(device)
    if cls is ResNet18:
        batch = (_images_uint8(4, 64).to(device), torch.arange(4, device=device))
        assert workload.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    else:
        batch = tuple(t.to(device) for t in _text_batch())
    workload.warmup(batch)  # checks values and sizes the vocabulary: may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            workload.step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(workload.last_loss)


def test_guessed_classes_are_generous_and_a_later_label_beyond_them_is_named():
    workload = _text()
    workload.warmup(_text_batch(classes=2))
    assert workload.num_classes == MIN_CLASSES == workload.model.head.out_features
    token_ids, lengths, _ = _text_batch(seed=1)
    workload.step((token_ids, lengths, torch.tensor([0, 2, 7, MIN_CLASSES - 1])))  # unseen but within the guess
    with pytest.raises(BatchError,
                       match=rf"^textcls: label {MIN_CLASSES} is out of range for num_classes={MIN_CLASSES}"):
        workload.step((token_ids, lengths, torch.tensor([0, MIN_CLASSES, 1, 1])))


def test_bind_takes_the_sizes_from_the_loader_and_keeps_given_ones():
    bound = TextClassifier()
    bound.bind(LoaderStats(vocab_size=50000, num_classes=3))  # as the feedbench text loaders report
    bound.setup(CPU)  # sized: built before any batch
    assert (bound.vocab_size, bound.num_classes) == (50000, 3)
    assert bound.model.embedding.num_embeddings == 50000 and bound.model.head.out_features == 3
    given = TextClassifier(num_classes=7, vocab_size=100)
    given.bind(LoaderStats(vocab_size=50000, num_classes=3))
    assert (given.vocab_size, given.num_classes) == (100, 7)
    plain = TextClassifier()
    plain.bind(LoaderStats())  # nothing reported: sized from the first batch later
    assert plain.vocab_size is None and plain.num_classes is None


@pytest.mark.parametrize("classes", [MAX_CLASSES + 1, 0, 2.5])
def test_bind_rejects_a_class_count_it_cannot_build_in_one_line(classes):
    with pytest.raises(ConfigError, match=r"num_classes"):
        TextClassifier().bind(LoaderStats(vocab_size=10, num_classes=classes))


def test_textcls_over_a_text_loader_with_three_classes_and_a_large_vocabulary(tmp_path):
    from feedbench.pipelines import measure
    from feedbench.text import Vocab, torch_loader

    counts = {f"w{i}": 100_000 - i for i in range(40_000)}  # ids 2 (w0) to 40001 (w39999)
    vocab = Vocab.from_counts(counts, tokenizer_name="regex", lowercase=True)
    assert len(vocab) > MIN_VOCAB_SIZE and vocab.encode(["w39999"]) == [40_001]
    records = [("w0 w1", 0), ("w2", 1), ("w39999 w3", 2), ("w39998", 2)]  # the first batch: small ids, 2 classes
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in records), encoding="utf-8")
    loader = torch_loader(path, tokenizer="regex", vocab=vocab, batch_size=2, workers=0, shuffle=False, bucket=False)
    assert loader.num_classes == 3
    workload = TextClassifier()
    result = measure(loader, workload=workload, device="cpu", steps=4, warmup=1)
    assert result.ok and result.steps == 4
    assert (workload.vocab_size, workload.num_classes) == (len(vocab), 3)
    assert torch.isfinite(workload.last_loss)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_a_later_batch_beyond_the_guessed_sizes_is_named_not_a_device_assert():
    device = torch.device("cuda")
    workload = TextClassifier()
    workload.setup(device)
    workload.warmup(tuple(t.to(device) for t in _text_batch()))
    token_ids, lengths, labels = _text_batch(seed=1)
    token_ids[0, 0] = MIN_VOCAB_SIZE + 5
    bad = tuple(t.to(device) for t in (token_ids, lengths, labels))
    with pytest.raises(ConfigError,
                       match=rf"token id {MIN_VOCAB_SIZE + 5} is out of range for vocab_size={MIN_VOCAB_SIZE}"):
        for _ in range(5):
            workload.step(bad)  # clamped on the device, reported once its extremes have landed
            torch.cuda.synchronize()
    labels[1] = MIN_CLASSES
    token_ids[0, 0] = 1
    workload.step(tuple(t.to(device) for t in (token_ids, lengths, labels)))
    torch.cuda.synchronize()
    with pytest.raises(ConfigError, match=rf"label {MIN_CLASSES} is out of range for num_classes={MIN_CLASSES}"):
        workload.step(tuple(t.to(device) for t in _text_batch()))
    assert torch.isfinite(workload.last_loss)  # no device-side assert: the device is still usable


def test_a_set_up_model_names_its_precision_and_cuda_is_bf16():
    for workload, name in ((ResNet18(num_classes=4), "resnet18"), (TextClassifier(), "textcls")):
        assert workload.describe() == name  # not set up: the name only
    resnet = ResNet18(num_classes=4)
    resnet.setup(CPU)
    assert resnet.describe() == "resnet18 (fp32)"
    # what setup on CUDA runs (channels_last and bf16 autocast): the name a CUDA result carries
    from feedbench.pipelines.workloads.models import precision

    assert precision("cuda", channels_last=True) == "bf16 autocast, channels_last" and precision("cpu") == "fp32"
