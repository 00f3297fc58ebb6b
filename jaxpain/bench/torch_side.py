"""The PyTorch side of the train benchmark: the released recipe.

`jaxpain.baselines.torch_vitpain` (timm DINOv3 + peft LoRA, two towers),
trained as released: eager, AdamW with the two released groups, global-norm
clipping 1.0, autocast (fp16 + GradScaler on CUDA as released, bf16 on CPUs
with native bf16, none in float32) and the released per-step host sync.
The e2e phase feeds it a DataLoader doing the released CPU-side torchvision
transforms on the same decoded records the JAX side reads. Runs inside a
`workers` process.
"""

from __future__ import annotations

import os

from jaxpain.bench import context, profiling, stats

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TorchPairs:
  """Map-style dataset: the released CPU-side pipeline on decoded records.

  Pain record + a random neutral view of the same identity (released
  `random_view`), each through the released synthetic-train torchvision
  transforms (reference.md §B.2) with independent draws.
  """

  def __init__(self, a):
    from jaxpain.data import sources
    self.name, self.data_dir = a.data_name, a.data_dir_resolved
    src = sources.open_source(self.name, 'train', self.data_dir)
    index = sources.split_index(src, self.name, 'train', self.data_dir)
    self.examples, self.identity = index.example_records(), index.identity
    self.refs, self.size = index.reference_table(), a.image_size
    self.neutral, self.no_augment = not a.no_neutral, a.no_augment
    self._src = self._tf = None

  def __len__(self) -> int:
    return len(self.examples)

  def _transform(self):
    if self._tf is None:
      import torchvision.transforms as T
      aug = [] if self.no_augment else [
        T.RandomHorizontalFlip(0.3), T.RandomRotation(5, fill=0),
        T.ColorJitter(0.3, 0.3, 0.2, 0.1),
        T.RandomAffine(0, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        T.GaussianBlur(3, sigma=(0.1, 1.0))]
      self._tf = T.Compose([T.Resize((self.size, self.size)), *aug,
                            T.ToTensor(), T.Normalize(MEAN, STD)])
    return self._tf

  def __getitem__(self, i: int):
    import numpy as np
    import torch
    from PIL import Image

    from jaxpain.data import sources
    if self._src is None:  # opened per loader process
      self._src = sources.open_source(self.name, 'train', self.data_dir)
    tf, rid = self._transform(), int(self.examples[i])
    rec = self._src[rid]
    out = [tf(Image.fromarray(rec['image']))]
    if self.neutral:
      refs = self.refs.get(int(self.identity[rid]), ())
      ref = self._src[int(np.random.choice(refs))] if len(refs) else rec
      out.append(tf(Image.fromarray(ref['image'])))
    au = torch.as_tensor(np.asarray(rec['au'], np.float32))
    return (*out, torch.tensor(float(rec['pspi'])), au)


class TorchSide:
  """The PyTorch baseline (timm + peft) with the released recipe."""

  def __init__(self, a, over: dict):
    import torch

    from jaxpain.baselines import torch_vitpain as tv
    self.a, self.torch = a, torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    if a.device == 'gpu' and not torch.cuda.is_available():
      raise SystemExit('--device gpu: torch sees no CUDA device')
    self.dev = torch.device('cuda' if a.device == 'gpu' else 'cpu')
    amp = over.get('amp', a.torch_amp)
    if amp == 'auto':
      amp = 'none' if a.resolved_dtype == 'float32' else (
        'fp16' if a.device == 'gpu' else 'bf16')
    self.amp = amp
    self.amp_dtype = {'none': None, 'bf16': torch.bfloat16,
                      'fp16': torch.float16}[amp]
    cfg = tv.TorchViTPainConfig(
      variant=a.variant, lora_rank=a.lora_rank, use_neutral=not a.no_neutral,
      official_compat=not a.dinov3)
    self.model = tv.TorchViTPain(cfg).to(self.dev)
    self.opt = torch.optim.AdamW(
      [{'params': self.model.lora_parameters(), 'lr': 1e-5},
       {'params': self.model.head_parameters(), 'lr': 1e-4}],
      betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    self.params = [p for g in self.opt.param_groups for p in g['params']]
    self.scaler = torch.amp.GradScaler('cuda') if amp == 'fp16' else None
    self._fns: dict = {}

  def info(self) -> dict:
    t = self.torch
    name = t.cuda.get_device_name() if self.dev.type == 'cuda' else 'cpu'
    return {'framework': 'torch', 'device': name, 'platform': self.dev.type,
            'amp': self.amp, 'threads': t.get_num_threads()}

  def peak(self) -> float:
    t = self.torch
    n, dt = (self.a.peak_gemm, t.bfloat16 if self.dev.type == 'cuda' else
             t.float32)
    x = t.ones(n, n, dtype=dt, device=self.dev)
    x @ x
    self._sync()
    best = min(w for w, _ in stats.timed(lambda: (x @ x, self._sync()), 5))
    return stats.rate(2 * n ** 3, best)

  def memory(self) -> dict:
    cuda = self.dev.type == 'cuda'
    return {'peak_rss_bytes': context.peak_rss(), 'device_peak_bytes':
            self.torch.cuda.max_memory_allocated() if cuda else None}

  def _sync(self):
    if self.dev.type == 'cuda':
      self.torch.cuda.synchronize()

  def _autocast(self):
    return self.torch.autocast(self.dev.type, dtype=self.amp_dtype,
                               enabled=self.amp_dtype is not None)

  def _loss(self, out, pspi, au):
    """The released loss (reference.md §B.2), in float32."""
    F = self.torch.nn.functional
    bce = [F.binary_cross_entropy_with_logits(
      out['binary_logits'][:, i].float(), (pspi >= t).float())
      for i, t in enumerate((1.0, 2.0, 3.0))]
    return (F.mse_loss(out['pspi'].float(), pspi / 16.0)
            + F.mse_loss(out['au'].float(), au) + sum(bce) / 3.0)

  def _train_step(self, x, n, pspi, au):
    clip = self.torch.nn.utils.clip_grad_norm_
    self.opt.zero_grad(set_to_none=True)
    with self._autocast():
      out = self.model(x, n)
    loss = self._loss(out, pspi, au)
    if self.scaler is not None:  # Lightning precision=16
      self.scaler.scale(loss).backward()
      self.scaler.unscale_(self.opt)
      clip(self.params, 1.0)
      self.scaler.step(self.opt)
      self.scaler.update()
    else:
      loss.backward()
      clip(self.params, 1.0)
      self.opt.step()
    out['pspi'].detach().cpu()  # released: metrics update syncs each step
    self._sync()

  def _batch(self):
    t, b, s = self.torch, self.a.batch, self.a.image_size
    g = t.Generator().manual_seed(0)
    x = t.randn(b, 3, s, s, generator=g).to(self.dev)
    n = None if self.a.no_neutral else t.randn(
      b, 3, s, s, generator=g).to(self.dev)
    pspi = (16 * t.rand(b, generator=g)).to(self.dev)
    au = t.randint(0, 6, (b, 6), generator=g).float().to(self.dev)
    return x, n, pspi, au

  def _loader(self):
    a, cuda = self.a, self.dev.type == 'cuda'
    dl = self.torch.utils.data.DataLoader(
      TorchPairs(a), batch_size=a.batch, shuffle=True, drop_last=True,
      num_workers=a.workers, prefetch_factor=a.prefetch if a.workers else None,
      persistent_workers=a.workers > 0, pin_memory=cuda)
    while True:
      yield from dl

  def _make(self, phase: str):
    if phase == 'train':
      batch = self._batch()
      return lambda: self._train_step(*batch)
    if phase == 'eval':
      x, n, _, _ = self._batch()

      def ev():
        with self.torch.inference_mode(), self._autocast():
          self.model(x, n)['pspi'].detach().cpu()
        self._sync()
      return ev
    batches = self._loader()

    def one():
      b = [t.to(self.dev, non_blocking=True) for t in next(batches)]
      x, n = b[0], (None if self.a.no_neutral else b[1])
      self._train_step(x, n, b[-2], b[-1])
    return one

  def run(self, phase: str, n: int) -> list[stats.Step]:
    self.model.train(phase != 'eval')
    if phase not in self._fns:
      self._fns[phase] = self._make(phase)
    return stats.timed(self._fns[phase], n)

  def profile(self, phase: str, n: int, out_dir: str) -> dict:
    """Per-op self times of `n` steps from torch.profiler."""
    prof = self.torch.profiler
    acts = [prof.ProfilerActivity.CPU]
    if self.dev.type == 'cuda':
      acts.append(prof.ProfilerActivity.CUDA)
    with prof.profile(activities=acts) as p:
      self.run(phase, n)
    p.export_chrome_trace(os.path.join(out_dir, 'torch_trace.json'))
    attr = 'self_device_time_total' if self.dev.type == 'cuda' else (
      'self_cpu_time_total')
    return profiling.op_summary({e.key: float(getattr(e, attr))
                       for e in p.key_averages()}, n)
