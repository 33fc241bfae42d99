"""PyTorch models with the reference repositories' parameter names, shapes and layer order (written
here from the upstream `resnet.py`, `nyud2-dir/models/` and `sts-b-dir/models.py` layouts, not copied), with
random weights, saved the way the references save them. Used by tests/test_convert.py only.

* `AgeResNet`: YyzHarry/imbalanced-regression `imdb-wiki-dir/resnet.py` names (conv1, bn1, layer1..4,
  linear, FDS.*); global average pool = the reference's AvgPool2d(7) on its 7×7 map at 224².
* `DepthNet`: `nyud2-dir/models/{net,modules}.py` names (E, D, MFF, R, R.FDS.*); `width` scales
  every channel count like `dirjax.models.depth.DepthNet` (64 = the reference).
* `StsModel`: `sts-b-dir/models.py` names (allennlp embedder, wrapped 2-layer bidirectional LSTM with
  packed sequences, `sts-b_pred_layer`, FDS.*).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FDS_SHAPES = ("running_mean", "running_var", "running_mean_last_epoch", "running_var_last_epoch",
              "smoothed_mean_last_epoch", "smoothed_var_last_epoch")


class FDSBuffers(nn.Module):
  """The reference FDS buffers (random statistics) and an independent Eq. 5 calibration oracle."""

  def __init__(self, feature_dim: int, bucket_num: int, bucket_start: int, generator: torch.Generator):
    super().__init__()
    num = bucket_num - bucket_start
    self.bucket_start = bucket_start
    self.register_buffer("epoch", torch.tensor([7.0]))
    for name in FDS_SHAPES:
      if "var" in name:
        value = 0.2 + 2.0 * torch.rand(num, feature_dim, generator=generator)
      else:
        value = torch.randn(num, feature_dim, generator=generator)
      self.register_buffer(name, value)
    self.register_buffer("num_samples_tracked", torch.randint(0, 50, (num,), generator=generator).float())

  def calibrate(self, features: torch.Tensor, labels: torch.Tensor, clip: tuple[float, float]) -> torch.Tensor:
    """x' = (x − μ_b) · sqrt(clip(σ̃²_b / σ²_b)) + μ̃_b with the last-epoch / smoothed statistics of
    each sample's integer bucket b = floor(label) − bucket_start (labels inside the bucket range)."""
    k = labels.long().reshape(-1) - self.bucket_start
    ratio = (self.smoothed_var_last_epoch[k] / self.running_var_last_epoch[k]).clamp(*clip)
    return (features - self.running_mean_last_epoch[k]) * ratio.sqrt() + self.smoothed_mean_last_epoch[k]


def randomize(module: nn.Module, generator: torch.Generator) -> None:
  """He-scaled conv / linear weights, random biases and BatchNorm affine parameters and statistics."""
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, (nn.Conv2d, nn.Linear)):
        fan_in = m.weight[0].numel()
        m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
        if m.bias is not None:
          m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))
      elif isinstance(m, nn.BatchNorm2d):
        m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=generator))
        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))
        m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=generator))
        m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))
      elif isinstance(m, nn.LSTM):
        for p in m.parameters():
          p.copy_(0.3 * torch.randn(p.shape, generator=generator))


def _bn(c: int) -> nn.BatchNorm2d:
  return nn.BatchNorm2d(c)


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
    self.bn1 = _bn(planes)
    self.relu = nn.ReLU()
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = _bn(planes)
    self.downsample = downsample

  def forward(self, x):
    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
    self.bn1 = _bn(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
    self.bn2 = _bn(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = _bn(planes * 4)
    self.relu = nn.ReLU()
    self.downsample = downsample

  def forward(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _make_layers(owner: nn.Module, block, width: int, stage_sizes) -> int:
  """Sets owner.layer1..4 (torchvision order; 1×1 conv + BN downsample where the shape changes)."""
  cin = width
  for stage, size in enumerate(stage_sizes):
    planes, blocks = width * 2 ** stage, []
    for i in range(size):
      stride = 2 if stage and not i else 1
      down = None
      if stride != 1 or cin != planes * block.expansion:
        down = nn.Sequential(nn.Conv2d(cin, planes * block.expansion, 1, stride, bias=False),
                             _bn(planes * block.expansion))
      blocks.append(block(cin, planes, stride, down))
      cin = planes * block.expansion
    setattr(owner, f"layer{stage + 1}", nn.Sequential(*blocks))
  return cin


class AgeResNet(nn.Module):
  """forward(x NCHW) -> (prediction [B, 1], encoding [B, D]) in eval mode."""

  def __init__(self, block, stage_sizes, width: int = 64, fds: tuple[int, int] | None = None, seed: int = 0):
    super().__init__()
    generator = torch.Generator().manual_seed(seed)
    self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    self.bn1 = _bn(width)
    self.relu = nn.ReLU()
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    dim = _make_layers(self, block, width, stage_sizes)
    self.linear = nn.Linear(dim, 1)
    if fds is not None:
      self.FDS = FDSBuffers(dim, *fds, generator)
    randomize(self, generator)

  def forward(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    encoding = x.mean(dim=(2, 3))
    return self.linear(encoding), encoding


class UpProjection(nn.Module):
  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 5, 1, 2, bias=False)
    self.bn1 = _bn(cout)
    self.relu = nn.ReLU()
    self.conv1_2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn1_2 = _bn(cout)
    self.conv2 = nn.Conv2d(cin, cout, 5, 1, 2, bias=False)
    self.bn2 = _bn(cout)

  def forward(self, x, size):
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    branch1 = self.bn1_2(self.conv1_2(self.relu(self.bn1(self.conv1(x)))))
    return self.relu(branch1 + self.bn2(self.conv2(x)))


class Encoder(nn.Module):
  def __init__(self, width: int, stage_sizes):
    super().__init__()
    self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    self.bn1 = _bn(width)
    self.relu = nn.ReLU()
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    _make_layers(self, Bottleneck, width, stage_sizes)

  def forward(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    b1 = self.layer1(x)
    b2 = self.layer2(b1)
    b3 = self.layer3(b2)
    return b1, b2, b3, self.layer4(b3)


class Decoder(nn.Module):
  def __init__(self, cin: int):
    super().__init__()
    self.conv = nn.Conv2d(cin, cin // 2, 1, bias=False)
    self.bn = _bn(cin // 2)
    for k in range(1, 5):
      setattr(self, f"up{k}", UpProjection(cin // 2 ** k, cin // 2 ** (k + 1)))

  def forward(self, b1, b2, b3, b4):
    d = F.relu(self.bn(self.conv(b4)))
    d = self.up1(d, b3.shape[2:])
    d = self.up2(d, b2.shape[2:])
    d = self.up3(d, b1.shape[2:])
    return self.up4(d, (2 * b1.shape[2], 2 * b1.shape[3]))


class MultiFeatureFusion(nn.Module):
  def __init__(self, channels, width: int):
    super().__init__()
    for k, c in enumerate(channels, 1):
      setattr(self, f"up{k}", UpProjection(c, width // 4))
    self.conv = nn.Conv2d(width, width, 5, 1, 2, bias=False)
    self.bn = _bn(width)

  def forward(self, b1, b2, b3, b4, size):
    x = torch.cat([self.up1(b1, size), self.up2(b2, size), self.up3(b3, size), self.up4(b4, size)], 1)
    return F.relu(self.bn(self.conv(x)))


class Refine(nn.Module):
  def __init__(self, channels: int, fds: tuple[int, int] | None, generator: torch.Generator):
    super().__init__()
    self.conv0 = nn.Conv2d(channels, channels, 5, 1, 2, bias=False)
    self.bn0 = _bn(channels)
    self.conv1 = nn.Conv2d(channels, channels, 5, 1, 2, bias=False)
    self.bn1 = _bn(channels)
    self.conv2 = nn.Conv2d(channels, 1, 5, 1, 2, bias=True)
    if fds is not None:
      self.FDS = FDSBuffers(channels, *fds, generator)

  def forward(self, x):
    x1 = F.relu(self.bn1(self.conv1(F.relu(self.bn0(self.conv0(x))))))
    return self.conv2(x1), x1


class DepthNet(nn.Module):
  """forward(x NCHW) -> (depth [B, 1, H/2, W/2], per-pixel features [B, 2·width, H/2, W/2])."""

  def __init__(self, width: int = 64, stage_sizes=(3, 4, 6, 3), fds: tuple[int, int] | None = None, seed: int = 0):
    super().__init__()
    generator = torch.Generator().manual_seed(seed)
    channels = [width * 4 * 2 ** k for k in range(4)]
    self.E = Encoder(width, stage_sizes)
    self.D = Decoder(channels[3])
    self.MFF = MultiFeatureFusion(channels, width)
    self.R = Refine(2 * width, fds, generator)
    randomize(self, generator)

  def forward(self, x):
    blocks = self.E(x)
    d = self.D(*blocks)
    mff = self.MFF(*blocks, d.shape[2:])
    return self.R(torch.cat([d, mff], 1))


class TextFieldEmbedder(nn.Module):
  def __init__(self, vocab: int, dim: int):
    super().__init__()
    self.token_embedder_words = nn.Embedding(vocab, dim, padding_idx=0)


class Seq2SeqWrapper(nn.Module):
  def __init__(self, dim: int, hidden: int, layers: int):
    super().__init__()
    self._module = nn.LSTM(dim, hidden, num_layers=layers, bidirectional=True, batch_first=True)


class PairEncoder(nn.Module):
  def __init__(self, vocab: int, dim: int, hidden: int, layers: int):
    super().__init__()
    self._text_field_embedder = TextFieldEmbedder(vocab, dim)
    self._phrase_layer = Seq2SeqWrapper(dim, hidden, layers)

  def encode(self, ids):
    """Masked max-pool of the packed BiLSTM outputs (pad id 0)."""
    lengths = (ids != 0).sum(1)
    packed = nn.utils.rnn.pack_padded_sequence(self._text_field_embedder.token_embedder_words(ids), lengths,
                                               batch_first=True, enforce_sorted=False)
    out, _ = self._phrase_layer._module(packed)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
    return out.masked_fill((ids == 0)[..., None], float("-inf")).max(1).values

  def forward(self, s1, s2):
    u, v = self.encode(s1), self.encode(s2)
    return torch.cat([u, v, (u - v).abs(), u * v], 1)


class StsModel(nn.Module):
  """forward(ids [B, 2, L]) -> (score prediction 5·logit [B, 1], pair features [B, 8·hidden])."""

  def __init__(self, vocab: int, dim: int, hidden: int, layers: int = 2, fds: tuple[int, int] | None = None,
               seed: int = 0):
    super().__init__()
    generator = torch.Generator().manual_seed(seed)
    self.pair_encoder = PairEncoder(vocab, dim, hidden, layers)
    if fds is not None:
      self.FDS = FDSBuffers(8 * hidden, *fds, generator)
    self.add_module("sts-b_pred_layer", nn.Linear(8 * hidden, 1))
    randomize(self, generator)
    with torch.no_grad():
      self.pair_encoder._text_field_embedder.token_embedder_words.weight.normal_(generator=generator)

  def forward(self, ids):
    features = self.pair_encoder(ids[:, 0], ids[:, 1])
    return 5.0 * getattr(self, "sts-b_pred_layer")(features), features


def save_reference_checkpoint(model: nn.Module, path: str, *, data_parallel: bool = True, wrapped: bool = True,
                              **extras) -> None:
  """`torch.save` as the references do: age / NYUD2 `{'state_dict': (module.)..., 'epoch', ...}`,
  STS-B a bare state dict (`wrapped=False`)."""
  state = model.state_dict()
  if data_parallel:
    state = {f"module.{k}": v for k, v in state.items()}
  torch.save({"epoch": 90, "model": "resnet50", "best_loss": 7.7, "state_dict": state, **extras} if wrapped
             else state, path)
