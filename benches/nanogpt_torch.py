"""The PyTorch side of the nanoGPT comparison (issue 10, "The bar against PyTorch").

A character-level GPT in nanoGPT's CPU configuration, trained on any UTF-8 text
with the data definitions that examples/tiny_gpt uses (docs/nanogpt_comparison.md):

- the whole file is read as UTF-8; the vocabulary is the sorted set of its
  characters; the first floor(0.9 n) characters are the training split, the
  rest the held-out split;
- a training batch is `batch` windows of `context + 1` tokens at uniformly
  random offsets in the training split (inputs the first `context`, targets
  shifted by one);
- learning rate: linear warm-up lr (it+1)/warmup for it < warmup, then cosine
  from lr to lr/10, reached exactly at the last step;
- AdamW (0.9, beta2), weight decay only on parameters with >= 2 dimensions,
  global gradient-norm clipping;
- periodic evaluation: mean NLL over `--eval-batches` batches of `batch` random
  windows of each split (from a generator of its own, so evaluating does not
  change the training batches), printed as `step N  train loss X  val loss Y`;
- `final val loss Y`: mean next-token NLL (nats/token) over every
  non-overlapping window of the held-out split, window i = tokens
  [i*context, (i+1)*context + 1), for every i with (i+1)*context + 1 <= len.

The model: token + learned position embeddings, n_layer pre-norm blocks
(LayerNorm, causal self-attention with one fused [3d, d] input projection and an
output projection, MLP d -> 4d -> d with exact GELU), a final LayerNorm and an
output layer tied to the token embedding; normal(0, 0.02) initialisation of the
linear and embedding weights, normal(0, 0.02/sqrt(2 n_layer)) for the two
residual output projections of each block. No biases unless --bias.

The last line is `step time X ms`: the mean wall time of a training step
(batch sampling, forward, backward, clipping, optimizer step), evaluations
excluded.

usage (nanoGPT's CPU configuration is the default):
  python benches/nanogpt_torch.py --corpus FILE --seed 0 --threads 2
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, help="a UTF-8 text file")
    p.add_argument("--tokenizer", default="char", choices=["char"])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "constant"])
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="global grad-norm bound, 0 = off")
    p.add_argument("--beta2", type=float, default=0.99)
    bias = p.add_mutually_exclusive_group()
    bias.add_argument("--no-bias", dest="bias", action="store_false",
                      help="no biases in linear layers and layer norms (the default)")
    bias.add_argument("--bias", dest="bias", action="store_true")
    p.set_defaults(bias=False)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--manual-attention", action="store_true",
                   help="explicit masked softmax instead of F.scaled_dot_product_attention")
    return p.parse_args()


class SelfAttention(nn.Module):
    def __init__(self, d, n_head, bias, dropout, manual):
        super().__init__()
        assert d % n_head == 0, f"width {d} is not a multiple of heads {n_head}"
        self.n_head, self.dropout, self.manual = n_head, dropout, manual
        self.qkv = nn.Linear(d, 3 * d, bias=bias)
        self.proj = nn.Linear(d, d, bias=bias)
        self.resid_drop = nn.Dropout(dropout)
        self.attn_drop = nn.Dropout(dropout)

    def forward(self, x):
        b, t, d = x.shape
        h = self.n_head
        # [b, t, 3d] -> three [b, h, t, d/h]
        q, k, v = self.qkv(x).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        if self.manual:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h))
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            weights = self.attn_drop(scores.masked_fill(future, float("-inf")).softmax(dim=-1))
            y = weights @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.resid_drop(self.proj(y))


class Mlp(nn.Module):
    def __init__(self, d, bias, dropout):
        super().__init__()
        self.fc = nn.Linear(d, 4 * d, bias=bias)
        self.proj = nn.Linear(4 * d, d, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))  # exact (erf) GELU


class Block(nn.Module):
    def __init__(self, d, n_head, bias, dropout, manual):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, bias=bias)
        self.attn = SelfAttention(d, n_head, bias, dropout, manual)
        self.ln2 = nn.LayerNorm(d, bias=bias)
        self.mlp = Mlp(d, bias, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    def __init__(self, vocab, context, d, n_head, n_layer, bias, dropout, manual):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d, n_head, bias, dropout, manual) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d, bias=bias)
        resid_std = 0.02 / math.sqrt(2 * n_layer)
        for name, m in self.named_modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                std = resid_std if name.endswith(".proj") else 0.02
                nn.init.normal_(m.weight, 0.0, std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.drop(self.wte(ids) + self.wpe(torch.arange(t, device=ids.device)))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)  # output layer tied to wte


def nll(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def windows(tokens, offsets, context):
    w = tokens[offsets[:, None] + torch.arange(context + 1)]
    return w[:, :-1], w[:, 1:]


def random_batch(tokens, batch, context, gen):
    offsets = torch.randint(len(tokens) - context, (batch,), generator=gen)
    return windows(tokens, offsets, context)


@torch.no_grad()
def sampled_loss(model, tokens, args, gen):
    losses = [nll(model, *random_batch(tokens, args.batch, args.context, gen)).item()
              for _ in range(args.eval_batches)]
    return sum(losses) / len(losses)


@torch.no_grad()
def full_loss(model, tokens, context, chunk=64):
    """Mean NLL over every non-overlapping window of `tokens`."""
    n = (len(tokens) - 1) // context  # windows i with (i+1)*context + 1 <= len
    assert n > 0, "held-out split shorter than one window"
    total = 0.0
    for start in range(0, n, chunk):
        offsets = torch.arange(start, min(start + chunk, n)) * context
        x, y = windows(tokens, offsets, context)
        total += nll(model, x, y).item() * y.numel()
    return total / (n * context)


def lr_at(it, args):
    if args.schedule == "constant":
        return args.lr
    if it < args.warmup:
        return args.lr * (it + 1) / args.warmup
    r = (it - args.warmup) / max(1, args.steps - 1 - args.warmup)
    floor = args.lr / 10
    return floor + 0.5 * (1.0 + math.cos(math.pi * r)) * (args.lr - floor)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
    n_train = len(text) * 9 // 10
    train, val = tokens[:n_train], tokens[n_train:]

    model = Gpt(len(chars), args.context, args.width, args.heads, args.layers,
                args.bias, args.dropout, args.manual_attention)
    params = list(model.parameters())  # the tied weight once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, args.beta2))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{len(text)} characters, vocab {len(chars)}, train {len(train)}, held out {len(val)}; "
          f"{sum(p.numel() for p in params)} parameters; "
          f"attention {'manual' if args.manual_attention else 'sdpa'}", flush=True)

    train_gen = torch.Generator().manual_seed(args.seed)
    eval_gen = torch.Generator().manual_seed(args.seed + 1_000_003)
    step_seconds = 0.0
    for it in range(args.steps):
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(it, args)
        x, y = random_batch(train, args.batch, args.context, train_gen)
        loss = nll(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        step_seconds += time.perf_counter() - t0

        done = it + 1
        if args.eval_every > 0 and (done % args.eval_every == 0 or done == args.steps):
            model.eval()
            tl = sampled_loss(model, train, args, eval_gen)
            vl = sampled_loss(model, val, args, eval_gen)
            model.train()
            print(f"step {done}  train loss {tl:.4f}  val loss {vl:.4f}", flush=True)

    model.eval()
    print(f"final val loss {full_loss(model, val, args.context):.4f}")
    print(f"step time {step_seconds / max(1, args.steps) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
